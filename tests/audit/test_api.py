from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit import catalog
from apps.audit.catalog import EntryKind, Severity
from apps.audit.models import JournalEntry, JournalHead
from apps.audit.services import NewEntry, journal_append, journal_append_many
from apps.core.context import Actor, acting_as
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract, assert_envelope

pytestmark = pytest.mark.django_db

catalog.register(
    EntryKind("test.api", Severity.INFO, required={"text": str}, optional={"amount": int}),
    EntryKind("test.api_alarm", Severity.CRITICAL, required={"text": str}),
)

MISSION = uuid.UUID("6f1c2a7e-0000-4000-8000-000000000001")


def _entry_only_in(workspace: Workspace, other: Workspace) -> JournalEntry:
    """Sequence numbers are per workspace, so #5 exists in both; write in ``workspace`` until
    its newest number is well past the other workspace's (creating the test's API key
    journals an entry there too)."""
    with workspace_schema(other):
        target = JournalHead.objects.get(pk=1).last_seq + 10
    head = JournalHead.objects.get(pk=1).last_seq
    if head < target:
        journal_append_many(entries=[NewEntry(kind="test.api", payload={"text": "pad"})] * (target - head))
    return journal_append(kind="test.api", payload={"text": "only here"})


class TestJournalEntriesApi(WorkspaceEndpointContract):
    list_url = "/api/v1/journal/"
    read_permission = "journal.read"

    def make_object(self, workspace: Workspace) -> str:
        globex = Workspace.objects.get(slug="globex")
        return f"/api/v1/journal/{_entry_only_in(workspace, globex).seq}/"


class TestCheckpointsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/journal/checkpoints/"
    read_permission = "journal.read"
    write_permission = "journal.manage"
    create_payload: dict[str, Any] = {}


class TestRetentionApi(WorkspaceEndpointContract):
    list_url = "/api/v1/journal/retention/"
    read_permission = "journal.read"
    write_permission = "journal.manage"
    create_payload = {"severity": "debug", "keep_days": 14}
    wrong_type_field = ("keep_days", "soon")


class TestMissionForksApi(WorkspaceEndpointContract):
    list_url = f"/api/v1/journal/missions/{MISSION}/forks/"
    read_permission = "journal.read"
    write_permission = "missions.run"
    create_payload = {"from_seq": 1}
    wrong_type_field = ("from_seq", "first")

    def make_object(self, workspace: Workspace) -> str:
        mission = uuid.uuid4()
        journal_append(kind="test.api", payload={"text": "mission step"}, mission_id=mission)
        return f"/api/v1/journal/missions/{mission}/replay/"


class TestCompactApi(WorkspaceEndpointContract):
    list_url = "/api/v1/journal/compact/"
    read_permission = "journal.manage"
    write_permission = "journal.manage"
    create_payload: dict[str, Any] = {}
    wrong_type_field = ("up_to_seq", "all")

    def test_reader_gets_200(self, personas: Any) -> None:
        pytest.skip("POST only")


@pytest.fixture
def acme_entries(acme: Workspace) -> list[JournalEntry]:
    with workspace_schema(acme):
        crew, agent = uuid.uuid4(), uuid.uuid4()
        alice = Actor(kind="user", id="7", label="alice")
        with acting_as(alice):
            first = journal_append(kind="test.api", payload={"text": "refund approved for order A-17"}, crew_id=crew)
        rows = [
            first,
            journal_append(
                kind="test.api", payload={"text": "email sent to customer", "amount": 25}, mission_id=MISSION
            ),
            journal_append(
                kind="test.api_alarm", payload={"text": "budget exceeded"}, mission_id=MISSION, agent_id=agent
            ),
            journal_append(kind="test.api", payload={"text": "order A-18 shipped"}, severity=Severity.DEBUG),
        ]
    connection.set_schema_to_public()
    return rows


def _seqs(response: Any) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [entry["seq"] for entry in response.json()["results"]]


def test_filters_by_mission_crew_agent_kind_severity_actor_and_time(api_as: Any, acme_entries: Any) -> None:
    first, email, alarm, debug = acme_entries
    client = api_as("viewer")
    base = f"/api/v1/journal/?after_seq={first.seq - 1}"
    assert _seqs(client.get(f"{base}&mission={MISSION}")) == [alarm.seq, email.seq]
    assert _seqs(client.get(f"{base}&crew={first.crew_id}")) == [first.seq]
    assert _seqs(client.get(f"{base}&agent={alarm.agent_id}")) == [alarm.seq]
    assert _seqs(client.get(f"{base}&kind=test.api_alarm")) == [alarm.seq]
    assert _seqs(client.get(f"{base}&kind=test.*")) == [debug.seq, alarm.seq, email.seq, first.seq]
    assert _seqs(client.get(f"{base}&severity=debug,critical")) == [debug.seq, alarm.seq]
    assert _seqs(client.get(f"{base}&min_severity=warning")) == [alarm.seq]
    assert _seqs(client.get(f"{base}&actor_kind=user&actor_id=7")) == [first.seq]
    soon = (timezone.now() + timedelta(minutes=5)).isoformat()
    past = (timezone.now() - timedelta(minutes=5)).isoformat()
    assert _seqs(client.get(f"{base}&since={past.replace('+', '%2B')}")) == [debug.seq, alarm.seq, email.seq, first.seq]
    assert _seqs(client.get(f"{base}&since={soon.replace('+', '%2B')}")) == []
    assert _seqs(client.get(f"{base}&until={past.replace('+', '%2B')}")) == []


def test_full_text_search_over_payloads_uses_the_gin_index(api_as: Any, acme_entries: Any, acme: Workspace) -> None:
    first, email, _alarm, debug = acme_entries
    client = api_as("viewer")
    base = f"/api/v1/journal/?after_seq={first.seq - 1}"
    assert _seqs(client.get(f"{base}&q=refund")) == [first.seq]
    assert _seqs(client.get(f"{base}&q=order")) == [debug.seq, first.seq]
    assert _seqs(client.get(f"{base}&q=order -shipped")) == [first.seq]
    assert _seqs(client.get(f"{base}&q=25")) == [email.seq]

    from apps.audit.selectors import JournalFilters, journal_entry_list

    with workspace_schema(acme), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        sql, params = journal_entry_list(filters=JournalFilters(q="refund")).order_by().query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "audit_je_payload_fts" in plan, plan


def test_bad_filters_get_the_envelope(api_as: Any) -> None:
    client = api_as("viewer")
    for query in ["mission=nope", "severity=loud", "after_seq=-1", "unknown=1", "since=yesterday"]:
        assert_envelope(client.get(f"/api/v1/journal/?{query}"), 400, "invalid")


def test_keyset_pagination_walks_every_entry_once(api_as: Any, acme: Workspace) -> None:
    with workspace_schema(acme):
        written = journal_append_many(
            entries=[NewEntry(kind="test.api", payload={"text": f"page {n}"}, mission_id=MISSION) for n in range(7)]
        )
    client = api_as("viewer")
    url: str | None = f"/api/v1/journal/?mission={MISSION}&page_size=3&after_seq={written[0].seq - 1}"
    seen: list[int] = []
    while url:
        body = client.get(url).json()
        seen += [entry["seq"] for entry in body["results"]]
        url = body["next"]
    assert seen == [e.seq for e in reversed(written)]


def test_list_query_budget(api_as: Any, acme_entries: Any, django_assert_max_num_queries: Any) -> None:
    client = api_as("viewer")
    client.get("/api/v1/journal/")  # warm the session
    with django_assert_max_num_queries(12):
        response = client.get("/api/v1/journal/?page_size=200")
    assert response.status_code == 200


def test_entry_detail_shows_the_hash_chain(api_as: Any, acme_entries: Any) -> None:
    _, email, *_ = acme_entries
    body = api_as("viewer").get(f"/api/v1/journal/{email.seq}/").json()
    assert body["payload"] == {"text": "email sent to customer", "amount": 25}
    assert body["hash"] == email.hash and body["prev_hash"] == email.prev_hash
    assert body["mission_id"] == str(MISSION)
    assert_envelope(api_as("viewer").get("/api/v1/journal/999999999/"), 404, "not_found")


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_export_streams_json_lines_oldest_first(api_as: Any, acme_entries: Any) -> None:
    first, email, alarm, debug = acme_entries
    response = api_as("viewer").get(f"/api/v1/journal/export/?after_seq={first.seq - 1}&kind=test.*")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl"
    assert "attachment" in response["Content-Disposition"]
    lines = b"".join(response).decode().splitlines()  # async content, consumed synchronously here
    rows = [json.loads(line) for line in lines]
    assert [row["seq"] for row in rows] == [first.seq, email.seq, alarm.seq, debug.seq]
    assert rows[1]["payload"]["amount"] == 25 and rows[1]["hash"] == email.hash


def test_kinds_endpoint_lists_the_catalog(api_as: Any) -> None:
    kinds = {kind["name"]: kind for kind in api_as("viewer").get("/api/v1/journal/kinds/").json()}
    assert kinds["test.api"]["required"] == {"text": ["str"]}
    assert kinds["test.api"]["optional"] == {"amount": ["int"]}
    assert {"membership.added", "fork.created", "journal.compacted", "journal.checkpoint"} <= set(kinds)


def test_verify_endpoint_is_for_managers(api_as: Any, acme_entries: Any) -> None:
    assert_envelope(api_as("viewer").get("/api/v1/journal/verify/"), 403, "permission_denied")
    body = api_as("admin").get("/api/v1/journal/verify/").json()
    assert body["ok"] is True and body["first_bad_seq"] is None


def test_on_demand_checkpoint_and_retention_via_the_api(api_as: Any, acme_entries: Any, acme: Workspace) -> None:
    client = api_as("admin")
    response = client.post("/api/v1/journal/checkpoints/", {}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["seq"] == acme_entries[-1].seq
    listed = client.get("/api/v1/journal/checkpoints/").json()["results"]
    assert listed[0]["seq"] == acme_entries[-1].seq

    response = client.post("/api/v1/journal/retention/", {"severity": "info", "keep_days": 90}, format="json")
    assert response.status_code == 200 and response.json()["keep_days"] == 90
    policies = {p["severity"]: p["keep_days"] for p in client.get("/api/v1/journal/retention/").json()}
    assert policies == {"debug": 30, "info": 90, "notice": None, "warning": None, "critical": None}
    with workspace_schema(acme):
        change = JournalEntry.objects.filter(kind="journal.retention_changed").order_by("-seq").first()
    assert change is not None and change.payload == {"severity": "info", "keep_days": 90, "previous_keep_days": None}
    assert change.actor_label == "acme-admin"
