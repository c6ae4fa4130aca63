from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from apps.audit import catalog
from apps.audit.catalog import EntryKind, Severity
from apps.audit.models import JournalEntry, JournalHead, RetentionPolicy
from apps.audit.services import NewEntry, journal_append, journal_append_many
from apps.audit.verify import journal_verify
from apps.core.context import SYSTEM, Actor, acting_as
from apps.core.errors import GovernanceUnavailable, ValidationFailed

pytestmark = pytest.mark.django_db

catalog.register(
    EntryKind(
        "test.typed",
        Severity.INFO,
        required={"count": int, "name": str},
        optional={"ratio": float, "flag": bool, "extra": (dict, type(None))},
    )
)


def _head() -> JournalHead:
    return JournalHead.objects.get(pk=1)


def test_entries_get_gapless_sequence_numbers_and_link_to_the_previous_hash(in_acme: Any) -> None:
    start = _head().last_seq
    first = journal_append(kind="test.typed", payload={"count": 1, "name": "a"})
    second = journal_append(kind="test.typed", payload={"count": 2, "name": "b"})
    batch = journal_append_many(
        entries=[NewEntry(kind="test.typed", payload={"count": n, "name": "c"}) for n in range(3)]
        + [{"kind": "test.typed", "payload": {"count": 9, "name": "d"}}]
    )
    assert [first.seq, second.seq, *[e.seq for e in batch]] == list(range(start + 1, start + 7))
    assert second.prev_hash == first.hash and batch[0].prev_hash == second.hash
    head = _head()
    assert (head.last_seq, head.last_hash) == (batch[-1].seq, batch[-1].hash)
    stored = JournalEntry.objects.get(seq=second.seq)
    assert (stored.kind, stored.payload, stored.hash) == ("test.typed", {"count": 2, "name": "b"}, second.hash)
    assert journal_verify().ok


def test_actor_and_request_id_come_from_the_context(in_acme: Any) -> None:
    actor = Actor(kind="user", id="42", label="alice")
    with acting_as(actor, request_id="req-123"):
        entry = journal_append(kind="test.typed", payload={"count": 1, "name": "x"})
    stored = JournalEntry.objects.get(seq=entry.seq)
    assert stored.actor == {"kind": "user", "id": "42", "label": "alice"}
    assert stored.request_id == "req-123"
    with acting_as(SYSTEM):
        system = journal_append(kind="test.typed", payload={"count": 1, "name": "x"})
    assert system.actor_kind == "system"


def test_references_and_severity_override_are_stored(in_acme: Any) -> None:
    mission, crew, agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    entry = journal_append(
        kind="test.typed",
        payload={"count": 1, "name": "x"},
        severity=Severity.WARNING,
        crew_id=crew,
        mission_id=str(mission),
        agent_id=agent,
    )
    stored = JournalEntry.objects.get(seq=entry.seq)
    assert (stored.mission_id, stored.crew_id, stored.agent_id, stored.severity) == (
        mission,
        crew,
        agent,
        "warning",
    )
    # The returned entry is the stored one, field for field.
    assert stored.as_dict() == entry.as_dict()
    with pytest.raises(ValidationFailed):
        journal_append(kind="test.typed", payload={"count": 1, "name": "x"}, severity="loud")
    with pytest.raises(ValidationFailed):
        journal_append(kind="test.typed", payload={"count": 1, "name": "x"}, mission_id="not-a-uuid")


def test_rolling_back_the_change_removes_its_entry_and_reuses_the_number(in_acme: Any) -> None:
    before = _head().last_seq
    with pytest.raises(RuntimeError), transaction.atomic():
        entry = journal_append(kind="test.typed", payload={"count": 1, "name": "gone"})
        assert JournalEntry.objects.filter(seq=entry.seq).exists()
        raise RuntimeError("the change failed")
    assert not JournalEntry.objects.filter(seq=before + 1).exists()
    assert _head().last_seq == before
    again = journal_append(kind="test.typed", payload={"count": 2, "name": "kept"})
    assert again.seq == before + 1
    assert journal_verify().ok


def test_an_invalid_entry_rolls_back_the_change_it_records(in_acme: Any) -> None:
    with pytest.raises(ValidationFailed), transaction.atomic():
        RetentionPolicy.objects.filter(severity="debug").update(keep_days=7)
        journal_append(kind="test.typed", payload={"count": "seven", "name": "x"})
    assert RetentionPolicy.objects.get(severity="debug").keep_days == 30


def test_journal_unavailable_means_the_change_does_not_happen(in_acme: Any) -> None:
    """Another connection holds the head row; our write times out, raises, and the change
    made in the same transaction is rolled back with it."""
    dsn = settings.DATABASES["default"]
    holder = psycopg.connect(
        host=dsn["HOST"],
        port=dsn["PORT"],
        user=dsn["USER"],
        password=dsn["PASSWORD"],
        dbname=connection.settings_dict["NAME"],
    )
    try:
        holder.execute(f"SELECT 1 FROM {in_acme.schema_name}.audit_journalhead WHERE id = 1 FOR UPDATE")
        with pytest.raises(GovernanceUnavailable) as excinfo, transaction.atomic():
            RetentionPolicy.objects.filter(severity="debug").update(keep_days=9)
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '200ms'")
            journal_append(kind="test.typed", payload={"count": 1, "name": "x"})
        assert excinfo.value.code == "journal_unavailable"
    finally:
        holder.rollback()
        holder.close()
    assert RetentionPolicy.objects.get(severity="debug").keep_days == 30


def test_writing_without_a_workspace_schema_raises(acme: Any) -> None:
    connection.set_schema_to_public()
    with pytest.raises(GovernanceUnavailable):
        journal_append(kind="test.typed", payload={"count": 1, "name": "x"})


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"name": "x"}, "count"),  # missing required key
        ({"count": "1", "name": "x"}, "count"),  # wrong type
        ({"count": True, "name": "x"}, "count"),  # bool is not an int
        ({"count": 1, "name": "x", "surprise": 1}, "surprise"),  # unknown key
        ({"count": 1, "name": "x", "ratio": "high"}, "ratio"),
        ({"count": 1, "name": "x", "flag": 1}, "flag"),
        ({"count": 1, "name": "x", "extra": {"bad": float("nan")}}, "extra"),
        ({"count": 1, "name": "x", "extra": {"bad": object()}}, "extra"),
        ({"count": 1, "name": "nul\x00"}, "name"),
        ({"count": 1, "name": "lone \ud800 surrogate"}, "name"),
        ({"count": 2**70, "name": "x"}, "count"),
        ({"count": 1, "name": "x", "ratio": 1e300}, "ratio"),
    ],
)
def test_payloads_that_do_not_match_the_schema_are_rejected(in_acme: Any, payload: dict[str, Any], key: str) -> None:
    before = _head().last_seq
    with pytest.raises(ValidationFailed) as excinfo:
        journal_append(kind="test.typed", payload=payload)
    assert excinfo.value.code == "invalid_journal_payload"
    assert excinfo.value.details["key"] == key
    assert key in excinfo.value.message
    assert _head().last_seq == before


def test_optional_keys_accept_their_types(in_acme: Any) -> None:
    entry = journal_append(
        kind="test.typed", payload={"count": 1, "name": "x", "ratio": 2, "flag": False, "extra": None}
    )
    assert entry.payload["ratio"] == 2


def test_unknown_kinds_are_rejected(in_acme: Any) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        journal_append(kind="no.such_kind", payload={})
    assert excinfo.value.code == "unknown_journal_kind"


def test_registering_is_idempotent_but_redefinition_fails() -> None:
    kind = EntryKind("test.idempotent", Severity.DEBUG, required={"a": int})
    catalog.register(kind)
    catalog.register(EntryKind("test.idempotent", Severity.DEBUG, required={"a": int}))
    with pytest.raises(ValueError, match="already registered"):
        catalog.register(EntryKind("test.idempotent", Severity.INFO, required={"a": int}))
    with pytest.raises(ValueError):
        EntryKind("test.bad_type", Severity.INFO, required={"a": set})


def test_severity_order() -> None:
    assert [Severity.rank(s) for s in ["debug", "info", "notice", "warning", "critical"]] == [0, 1, 2, 3, 4]
    assert Severity.at_most("info") == ["debug", "info"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_journalentry SET payload = '{}'::jsonb WHERE seq = %s",
        "DELETE FROM audit_journalentry WHERE seq = %s",
        "TRUNCATE audit_journalentry",
    ],
)
def test_the_database_rejects_update_delete_and_truncate(in_acme: Any, statement: str) -> None:
    entry = journal_append(kind="test.typed", payload={"count": 1, "name": "x"})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [entry.seq] if "%s" in statement else [])
    assert JournalEntry.objects.get(seq=entry.seq).payload == {"count": 1, "name": "x"}


def test_the_orm_cannot_change_entries_either(in_acme: Any) -> None:
    entry = journal_append(kind="test.typed", payload={"count": 1, "name": "x"})
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalEntry.objects.filter(seq=entry.seq).update(kind="test.other")
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalEntry.objects.filter(seq=entry.seq).delete()


def test_the_head_only_moves_forward(in_acme: Any) -> None:
    journal_append(kind="test.typed", payload={"count": 1, "name": "x"})
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        JournalHead.objects.filter(pk=1).update(last_seq=0)
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalHead.objects.filter(pk=1).delete()


@pytest.mark.usefixtures("committed_db")
@pytest.mark.django_db(transaction=False)
def test_concurrent_writers_get_distinct_gapless_numbers(globex: Any) -> None:
    """Four threads, each with its own connection, append in their own transactions."""
    from django.db import connections

    from apps.tenants.access import workspace_schema

    with workspace_schema(globex):
        start = _head().last_seq
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with workspace_schema(globex):
                for i in range(25):
                    journal_append(kind="test.typed", payload={"count": i, "name": f"w{n}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with workspace_schema(globex):
        seqs = list(JournalEntry.objects.filter(seq__gt=start).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(start + 1, start + 101))
        result = journal_verify()
        assert result.ok, result.as_dict()


def _on_own_connection(workspace: Any, work: Any) -> Any:
    """Run ``work()`` in a thread with its own connection, outside any transaction (the
    test's own connection is inside the test's transaction)."""
    from apps.tenants.access import workspace_schema

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with workspace_schema(workspace):
                outcome["value"] = work()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _Queued:
    """A writer turn that reports other threads queued behind it."""

    @contextlib.contextmanager
    def turn(self) -> Iterator[bool]:
        yield True


@pytest.mark.usefixtures("committed_db")
@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("queued", [False, True])
def test_a_standalone_append_is_on_disk_when_it_returns(
    globex: Any, monkeypatch: pytest.MonkeyPatch, queued: bool
) -> None:
    """Alone, its commit waits for the flush. Queued behind by other threads, it commits
    without waiting (freeing the head at once), then the barrier waits until the WAL is
    flushed past that commit."""
    from apps.audit import services

    commit_modes: list[bool] = []
    committed_up_to: list[int] = []
    real_write, real_barrier = services._write, services.durability_barrier

    def write(*args: Any, async_commit: bool | None) -> Any:
        commit_modes.append(async_commit)
        return real_write(*args, async_commit=async_commit)

    def barrier() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            committed_up_to.append(int(cursor.fetchone()[0]))
        real_barrier()

    def append() -> tuple[Any, ...]:
        journal_append(kind="test.typed", payload={"count": 1, "name": "durable"})
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn, current_setting('synchronous_commit')")
            return tuple(cursor.fetchone())

    monkeypatch.setattr(services, "_write", write)
    monkeypatch.setattr(services, "durability_barrier", barrier)
    if queued:
        monkeypatch.setattr(services, "_writer", lambda schema: _Queued())
    flushed, mode = _on_own_connection(globex, append)
    assert commit_modes == [True if queued else None]  # None: the server decides (uncontended: waits)
    assert len(committed_up_to) == (1 if queued else 0)
    if queued:
        assert int(flushed) >= committed_up_to[0]
    assert mode == "on"  # an asynchronous commit stays local to the append's transaction


def test_writer_turns_report_a_queue() -> None:
    from apps.audit.services import _Writer

    writer = _Writer()
    seen: list[bool] = []
    with writer.turn() as first_queued:
        waiting = threading.Thread(target=lambda: seen.append(_take(writer)))
        waiting.start()
        while writer._wanting < 2:  # the other thread is queued now
            time.sleep(0.001)
        seen.append(first_queued)
    waiting.join()
    assert seen == [False, False]  # nobody was queued when either took its turn
    with writer.turn() as queued:
        assert queued is False


def _take(writer: Any) -> bool:
    with writer.turn() as queued:
        return bool(queued)


@pytest.mark.usefixtures("committed_db")
@pytest.mark.django_db(transaction=False)
def test_appends_from_two_connections_chain_behind_each_other(globex: Any) -> None:
    """Another connection (another process, in production) appends between two of ours:
    each append chains behind whatever the head is when it runs."""

    def appends() -> None:
        first = journal_append(kind="test.typed", payload={"count": 1, "name": "first"})
        other = _on_own_connection(
            globex, lambda: journal_append(kind="test.typed", payload={"count": 2, "name": "other process"})
        )
        last = journal_append(kind="test.typed", payload={"count": 3, "name": "behind it"})
        assert (other.seq, last.seq) == (first.seq + 1, first.seq + 2)
        assert (other.prev_hash, last.prev_hash) == (first.hash, other.hash)
        assert JournalEntry.objects.get(seq=last.seq).hash == last.hash
        assert journal_verify().ok

    _on_own_connection(globex, appends)


@pytest.mark.usefixtures("committed_db")
@pytest.mark.django_db(transaction=False)
def test_a_failed_standalone_append_fails_closed(globex: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.audit import services

    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("the server closed the connection")

    def append(name: str) -> Any:
        return lambda: journal_append(kind="test.typed", payload={"count": 1, "name": name})

    before = _on_own_connection(globex, lambda: _head().last_seq)
    monkeypatch.setattr(services, "run_prepared", broken)
    with pytest.raises(GovernanceUnavailable):
        _on_own_connection(globex, append("lost"))
    assert _on_own_connection(globex, lambda: _head().last_seq) == before
    monkeypatch.undo()
    # Queued behind others, a barrier that cannot confirm the flush is a failure too: the
    # caller must not act on an entry that may not be on disk.
    monkeypatch.setattr(services, "_writer", lambda schema: _Queued())
    monkeypatch.setattr(services, "durability_barrier", broken)
    with pytest.raises(GovernanceUnavailable):
        _on_own_connection(globex, append("unconfirmed"))


catalog.register(
    EntryKind("test.values", Severity.INFO, optional={"v": (dict, list, str, int, float, bool, type(None))})
)


@pytest.mark.parametrize(
    "value",
    [
        {"floats": [0.1, 1.5e-7, 2.0, 1e-300, 999999999999999.0, -0.0, 0.30000000000000004]},
        {"text": 'naïve café ✓ 🚀 "quoted" back\\slash \n\t\u0001 <b>&amp;</b>'},
        {"b": 1, "aa": 2, "a": {"z": [], "y": {}, "éé": None}, "": "empty key", "10": 10, "9": 9},
        [1, True, False, None, "1", 2**63 - 1, -(2**63), 2**64 - 1],
        {"nested tuple": ("becomes", "a", "list")},
        "",
        -0.0,
    ],
)
def test_payload_values_read_back_identically_and_verify(in_acme: Any, value: Any) -> None:
    entry = journal_append(kind="test.values", payload={"v": value})
    stored = JournalEntry.objects.get(seq=entry.seq)
    assert stored.payload == entry.payload
    result = journal_verify()
    assert result.ok, result.as_dict()


def test_the_document_sent_to_the_database_is_the_canonical_form_without_its_head() -> None:
    """The append function hashes "[<format>,<seq>," + document[1:]; verification hashes
    chain.canonical_values(...): both must be the same bytes."""
    from apps.audit import chain

    values = (
        1_795_000_000_123_456,
        "test.values",
        "info",
        "user",
        "42",
        'Ana "quoted" ✓',
        None,
        "6f1c1c8e-3a6e-4b8e-9a43-1d2f6f0d8c11",
        None,
        "req-1",
        {"b": [1, 2.5, None], "a": {"é": "\n"}},
    )
    document = chain.entry_document(*values)
    assert f"[{chain.FORMAT_VERSION},77,{document[1:]}".encode() == chain.canonical_values(77, *values)


@pytest.mark.django_db
def test_the_hmac_key_is_not_stored_in_the_database(globex: Any) -> None:
    from django.conf import settings

    from apps.tenants.access import workspace_schema

    with workspace_schema(globex), connection.cursor() as cursor:
        journal_append(kind="test.typed", payload={"count": 1, "name": "keyed"})
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'audit_journal_append'")
        sources = [row[0] for row in cursor.fetchall()]
    assert sources
    assert not any(str(settings.JOURNAL_HMAC_KEY) in source for source in sources)


@pytest.mark.usefixtures("committed_db")
@pytest.mark.django_db(transaction=False)
def test_an_append_that_waited_for_the_head_commits_without_holding_it_through_the_fsync(
    globex: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction (another process's append, say) holds the head: the append
    function queues for it, commits without waiting for the disk (audit/0006), and the
    client waits for the flush before it returns."""
    from apps.audit import services
    from apps.tenants.access import workspace_schema

    barriers: list[int] = []
    real_barrier = services.durability_barrier

    def barrier() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            barriers.append(int(cursor.fetchone()[0]))
        real_barrier()

    monkeypatch.setattr(services, "durability_barrier", barrier)
    locked, release = threading.Event(), threading.Event()

    def hold_head() -> None:
        try:
            with workspace_schema(globex), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT last_seq FROM audit_journalhead WHERE id = 1 FOR UPDATE")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_head)
    holder.start()
    assert locked.wait(10)
    threading.Timer(0.3, release.set).start()

    def append() -> tuple[Any, ...]:
        written = journal_append(kind="test.typed", payload={"count": 1, "name": "queued on the head"})
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn, current_setting('synchronous_commit')")
            return (written.seq, *cursor.fetchone())

    seq, flushed, mode = _on_own_connection(globex, append)
    holder.join(10)
    assert len(barriers) == 1  # it committed without waiting, so it waited for the flush itself
    assert int(flushed) >= barriers[0]
    assert mode == "on"
    with workspace_schema(globex):
        assert JournalEntry.objects.filter(seq=seq, kind="test.typed").exists()
        assert journal_verify().ok
