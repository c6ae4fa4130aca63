"""The built-in tools, run for real (local HTTP server, the email backend, files, the CRM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.crews.models import CrmAccount, CrmChange, CrmChangeStatus, ToolCall, ToolCallStatus
from apps.crews.tools import all_tools, get_tool
from apps.crews.tools.http_request import host_allowed
from tests.crews.conftest import handle, make_crew, start, unique

pytestmark = pytest.mark.django_db


def _run(workspace: Any, crew: Any, name: str, arguments: dict[str, Any], call_id: str | None = None) -> Any:
    mission = start(crew, unique("tool test"))
    call = {"id": call_id or unique("call").replace(" ", "-"), "name": name, "arguments": arguments}
    outcome = handle(workspace=workspace, mission=mission, agent=crew.agents.get(), call=call, step=1)
    return outcome, ToolCall.objects.get(mission=mission, tool_call_id=call["id"]), mission


def test_every_tool_module_declares_a_valid_contract() -> None:
    for tool in all_tools():
        assert tool.name and tool.description
        assert tool.parameters["type"] == "object" and tool.parameters.get("additionalProperties") is False
        assert isinstance(tool.side_effects, bool)
        assert tool.validation_errors({"surely_not_a_parameter": 1})


def test_http_request_reaches_allowlisted_loopback_hosts_only(in_acme: Any, api_server: Any) -> None:
    port = api_server.server_address[1]
    crew = make_crew(tools=["http_request"], http_allowlist=[f"127.0.0.1:{port}"])
    outcome, record, mission = _run(
        in_acme, crew, "http_request", {"method": "POST", "url": f"http://127.0.0.1:{port}/tickets", "json": {"a": 1}}
    )
    assert not outcome.is_error and record.status == ToolCallStatus.SUCCEEDED
    assert record.result["status"] == 201 and record.result["json"] == {"ok": True, "ticket": "T-9"}
    (seen,) = api_server.seen
    assert seen["body"] == {"a": 1}
    assert seen["headers"]["Idempotency-Key"] == f"{mission.pk}:{record.tool_call_id}"

    other = make_crew(tools=["http_request"], http_allowlist=["api.example.com"])
    outcome, record, _ = _run(in_acme, other, "http_request", {"method": "GET", "url": f"http://127.0.0.1:{port}/"})
    assert outcome.is_error and "not on this crew's allowlist" in outcome.content
    assert record.status == ToolCallStatus.FAILED and len(api_server.seen) == 1


def test_allowlist_matches_host_and_port() -> None:
    assert host_allowed("https://api.example.com/x", ["api.example.com"])
    assert host_allowed("https://api.example.com/x", ["api.example.com:443"])
    assert not host_allowed("https://api.example.com:8443/x", ["api.example.com:443"])
    assert not host_allowed("https://api.example.com.evil.test/x", ["api.example.com"])
    assert not host_allowed("http://user@127.0.0.2/", ["127.0.0.1"])


def test_crm_stage_update_stages_then_ships_the_change(in_acme: Any) -> None:
    account = CrmAccount.objects.create(name=unique("Acme"), stage="customer", plan="Team")
    crew = make_crew(tools=["crm_stage_update"])
    spec = get_tool("crm_stage_update")
    assert spec is not None and spec.stage is not None
    outcome, record, mission = _run(
        in_acme,
        crew,
        "crm_stage_update",
        {"account": account.name, "changes": {"plan": "Enterprise"}, "reason": "upsell"},
    )
    assert not outcome.is_error, outcome.content
    change = CrmChange.objects.get(mission_id=mission.pk)
    assert change.status == CrmChangeStatus.APPLIED and change.diff() == [
        {"field": "plan", "before": "Team", "after": "Enterprise"}
    ]
    account.refresh_from_db()
    assert account.plan == "Enterprise"
    applied = JournalEntry.objects.get(kind="crm.change_applied", mission_id=mission.pk)
    assert applied.payload["tool_call_id"] == record.tool_call_id


def test_crm_changes_stay_staged_when_the_crew_holds_them(in_acme: Any) -> None:
    account = CrmAccount.objects.create(name=unique("Initech"), stage="customer")
    crew = make_crew(tools=["crm_stage_update"], settings={"crm_hold_changes": True})
    outcome, _, mission = _run(
        in_acme, crew, "crm_stage_update", {"account": account.name, "changes": {"stage": "at_risk"}}
    )
    change = CrmChange.objects.get(mission_id=mission.pk)
    assert change.status == CrmChangeStatus.STAGED and '"staged"' in outcome.content
    account.refresh_from_db()
    assert account.stage == "customer"


def test_write_note_writes_into_the_crew_volume_only(in_acme: Any, crews_volume: Path) -> None:
    crew = make_crew(tools=["write_note"])
    outcome, record, _ = _run(in_acme, crew, "write_note", {"filename": "draft.md", "content": "Hello"})
    assert not outcome.is_error
    path = crews_volume / in_acme.schema_name / str(crew.pk) / "notes" / "draft.md"
    assert path.read_text() == "Hello" and record.result == {"path": "notes/draft.md", "bytes": 5}
    outcome, record, _ = _run(in_acme, crew, "write_note", {"filename": "../escape.md", "content": "x"})
    assert outcome.is_error and record.status == ToolCallStatus.INVALID
    assert not (crews_volume / in_acme.schema_name / str(crew.pk) / "escape.md").exists()


def test_crm_lookup_finds_accounts_by_name_domain_or_contact(in_acme: Any) -> None:
    name = unique("Umbrella")
    CrmAccount.objects.create(name=name, domain="umbrella.test", contacts=[{"email": "alice@umbrella.test"}])
    crew = make_crew(tools=["crm_lookup"])
    for query in (name, "bob@umbrella.test", "alice@umbrella.test"):
        outcome, _, _ = _run(in_acme, crew, "crm_lookup", {"query": query})
        assert name in outcome.content, query


def test_a_finished_call_is_answered_from_its_record(in_acme: Any, mailoutbox: Any) -> None:
    crew = make_crew(tools=["send_email"])
    mission = start(crew, unique("twice"))
    call = {"id": "call-twice", "name": "send_email", "arguments": {"to": ["x@acme.test"], "subject": "s", "body": "b"}}
    first = handle(workspace=in_acme, mission=mission, agent=crew.agents.get(), call=call, step=1)
    again = handle(workspace=in_acme, mission=mission, agent=crew.agents.get(), call=call, step=1)
    assert first == again and len(mailoutbox) == 1
    assert JournalEntry.objects.filter(mission_id=mission.pk, kind="tool.executed").count() == 1
