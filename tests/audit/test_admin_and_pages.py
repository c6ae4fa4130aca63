from __future__ import annotations

import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from apps.audit import catalog
from apps.audit.catalog import EntryKind, Severity
from apps.audit.models import JournalCheckpoint, JournalEntry, RetentionPolicy
from apps.audit.services import journal_append
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

pytestmark = pytest.mark.django_db

catalog.register(EntryKind("test.page", Severity.INFO, required={"text": str}))


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def entries(acme: Workspace) -> list[JournalEntry]:
    with workspace_schema(acme):
        mission = uuid.uuid4()
        return [
            journal_append(kind="test.page", payload={"text": "refund approved for pelican"}, mission_id=mission),
            journal_append(kind="test.page", payload={"text": "nothing to see"}),
        ]


def test_workspace_admin_lists_searches_and_never_edits(superuser: Any, entries: list[JournalEntry]) -> None:
    client = _client(superuser)
    base = "/w/acme/admin/audit/journalentry/"
    page = client.get(base)
    assert page.status_code == 200
    assert client.get(base + "?q=pelican").context["cl"].result_count == 1
    assert client.get(base + f"?q={entries[0].mission_id}").context["cl"].result_count == 1
    assert client.get(base + f"?q={entries[1].seq}").context["cl"].result_count == 1
    assert client.get(base + "?severity__exact=info&area=test").status_code == 200
    detail = client.get(f"{base}{entries[0].seq}/change/")
    assert detail.status_code == 200 and b"pelican" in detail.content
    assert client.post(f"{base}{entries[0].seq}/delete/").status_code == 403
    assert client.get(base + "add/").status_code == 403


def test_admin_actions_call_the_services(superuser: Any, entries: list[JournalEntry], acme: Workspace) -> None:
    client = _client(superuser)
    response = client.post(
        "/w/acme/admin/audit/journalentry/",
        {"action": "verify_journal", "_selected_action": [entries[0].seq]},
        follow=True,
    )
    assert b"Journal OK" in response.content
    with workspace_schema(acme):
        policy_pk = RetentionPolicy.objects.get(severity="debug").pk
    response = client.post(
        "/w/acme/admin/audit/retentionpolicy/", {"action": "compact_now", "_selected_action": [policy_pk]}, follow=True
    )
    assert b"Compacted 0 entries" in response.content


def test_portal_journal_page_shows_entries_to_members(viewer: Any, outsider: Any, entries: list[JournalEntry]) -> None:
    page = _client(viewer).get("/w/acme/journal/?q=pelican")
    assert page.status_code == 200
    assert b"refund approved for pelican" in page.content and b"nothing to see" not in page.content
    assert _client(viewer).get("/w/acme/journal/?mission=not-a-uuid").status_code == 200
    assert _client(outsider).get("/w/acme/journal/").status_code == 404


def test_checkpoint_and_compact_commands(in_acme: Any, django_capture_on_commit_callbacks: Any) -> None:
    journal_append(kind="test.page", payload={"text": "x"})
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("journal_checkpoint", "--workspace", "acme", stdout=out)
    assert "checkpoint at #" in out.getvalue()
    assert JournalCheckpoint.objects.filter(reason="on_demand").exists()
    out = StringIO()
    call_command("journal_compact", "--workspace", "acme", stdout=out)
    assert "acme: removed 0 entries" in out.getvalue()


def test_housekeeping_checkpoints_every_workspace_that_moved(
    acme: Workspace, globex: Workspace, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.audit.housekeeping import JournalHousekeeping

    with workspace_schema(acme):
        entry = journal_append(kind="test.page", payload={"text": "tick"})
    keeper = JournalHousekeeping(checkpoint_every=60, compact_every=3600)
    with django_capture_on_commit_callbacks(execute=True):
        keeper.tick(now=1000.0)
    with workspace_schema(acme):
        assert JournalCheckpoint.objects.filter(seq=entry.seq, reason="periodic").exists()
        count = JournalCheckpoint.objects.count()
    keeper.tick(now=1010.0)  # too soon: nothing
    with workspace_schema(acme):
        assert JournalCheckpoint.objects.count() == count
    keeper.tick(now=1070.0)  # due, but acme's journal has not moved since
    with workspace_schema(acme):
        assert JournalCheckpoint.objects.count() == count
