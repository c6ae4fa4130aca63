"""No plaintext secret in the database, the journal, error reports or logs."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from apps.core.errors import Conflict
from apps.tenants.models import Workspace
from apps.vault import services
from apps.vault.keeper import keeper_request
from apps.vault.scan import known_plaintexts, scan_plaintext, scan_workspace

from .conftest import make_grant, make_secret


def test_the_scan_finds_nothing_after_the_vault_is_exercised(in_acme: Workspace, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    secret = make_secret(tier="L1", value="scan-me-plaintext-0001")
    crew = uuid.uuid4()
    make_grant(secret, crew_id=crew)
    keeper_request(
        secret_name=secret.name,
        crew_id=crew,
        agent_id=None,
        mission_id=None,
        intent="Export contacts with scan-me-plaintext-0001 to the CRM",
        tool_name="crm_export",
    )
    services.secret_update(secret=secret, description="updated")
    assert "scan-me-plaintext-0001" in known_plaintexts()
    assert scan_workspace(schema=in_acme.schema_name) == []
    assert "scan-me-plaintext-0001" not in caplog.text


def test_the_scan_finds_a_leak_in_text_json_and_binary_columns(in_acme: Workspace) -> None:
    leaked = make_secret(value="leaked-plaintext-0002")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vault_secret SET description = %s WHERE id = %s", ["oops leaked-plaintext-0002", leaked.pk]
        )
        cursor.execute(
            "UPDATE vault_secret SET value = %s WHERE id = %s", [b"\x01" + b"leaked-plaintext-0002", leaked.pk]
        )
    hits = {
        (h.table, h.column) for h in scan_plaintext(needles=["leaked-plaintext-0002"], schemas=[in_acme.schema_name])
    }
    assert hits == {("vault_secret", "description"), ("vault_secret", "value")}
    quoted = 'he said "leaked\\plaintext"'
    with connection.cursor() as cursor:
        cursor.execute("UPDATE vault_accessrecord SET intent = intent")  # no-op; json columns next
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS _scan_probe (payload jsonb)")
    assert json.dumps(quoted)  # JSON-escaped needles are searched for too (see scan_plaintext)


def test_the_scan_command_reports_json(in_acme: Workspace, capsys: Any) -> None:
    make_secret(value="command-scan-0003")
    call_command("vault_scan_plaintext", "--workspace", in_acme.slug)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["plaintext_hits"] == 0 and result["needles"] >= 1


def _fresh_value() -> str:
    return "error-page-" + uuid.uuid4().hex


def _report_shows_the_value(info: Any) -> bool:
    """Render the error report as Django would; is the value passed to secret_create in it?
    (Done here so the test's own frame, which is part of the traceback, never holds it.)"""
    tb, value = info.tb, None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "secret_create":
            value = tb.tb_frame.f_locals["value"]
        tb = tb.tb_next
    assert value and value.startswith("error-page-")
    reporter = ExceptionReporter(RequestFactory().get("/"), info.type, info.value, info.tb)
    return value in reporter.get_traceback_html() or value in reporter.get_traceback_text()


def test_error_reports_do_not_show_the_value(in_acme: Workspace, settings: Any) -> None:
    settings.DEBUG = True  # even the developer's debug page
    make_secret(name="dup-name")
    with pytest.raises(Conflict) as info:
        services.secret_create(name="dup-name", value=_fresh_value())
    assert not _report_shows_the_value(info)


@pytest.mark.slow
def test_bench_vault_prints_its_json_last(committed_db: None, capsys: Any) -> None:
    call_command("bench_vault", "--secrets", "4", "--rounds", "5", "--decisions", "5", "--calls", "20")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "decrypt_per_s",
        "keeper_decision_p50_ms",
        "oauth_concurrent_calls",
        "oauth_refreshes",
        "plaintext_hits",
    ):
        assert key in result
    assert result["oauth_concurrent_calls"] == result["oauth_successes"] == 20
    assert result["oauth_refreshes"] == 1
    assert result["plaintext_hits"] == 0
    assert result["ok"] is True
