from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.audit import catalog
from apps.audit.catalog import EntryKind, Severity
from apps.audit.checkpoints import checkpoint_file
from apps.audit.models import JournalCheckpoint, JournalEntry, JournalHead
from apps.audit.services import journal_append, journal_checkpoint, journal_compact, retention_policy_set
from apps.audit.verify import journal_verify
from tests.audit.conftest import tamper

pytestmark = pytest.mark.django_db

catalog.register(
    EntryKind("test.note", Severity.INFO, required={"n": int}, optional={"text": str}),
    EntryKind("test.chatter", Severity.DEBUG, required={"n": int}),
)


def _write(count: int, kind: str = "test.note") -> list[JournalEntry]:
    return [journal_append(kind=kind, payload={"n": n}) for n in range(count)]


def test_an_untouched_journal_verifies(in_acme: Any) -> None:
    _write(10)
    result = journal_verify()
    assert result.ok, result.as_dict()
    assert result.entries == result.head_seq >= 10


def test_an_edited_payload_is_detected_at_its_sequence(in_acme: Any) -> None:
    entries = _write(10)
    target = entries[4].seq
    tamper("UPDATE audit_journalentry SET payload = '{\"n\": 999}'::jsonb WHERE seq = %s", [target])
    result = journal_verify()
    assert not result.ok
    assert result.first_bad_seq == target
    assert "altered" in result.first_problem.reason  # type: ignore[union-attr]


def test_an_edited_column_is_detected(in_acme: Any) -> None:
    entries = _write(5)
    tamper(
        "UPDATE audit_journalentry SET severity = 'debug', actor_label = 'someone else' WHERE seq = %s",
        [entries[2].seq],
    )
    assert journal_verify().first_bad_seq == entries[2].seq


def test_a_deleted_middle_entry_is_detected(in_acme: Any) -> None:
    entries = _write(10)
    target = entries[5].seq
    tamper("DELETE FROM audit_journalentry WHERE seq = %s", [target])
    result = journal_verify()
    assert result.first_bad_seq == target
    assert "missing" in result.first_problem.reason  # type: ignore[union-attr]


def test_a_reordered_pair_is_detected(in_acme: Any) -> None:
    entries = _write(10)
    a, b = entries[3].seq, entries[4].seq
    tamper("UPDATE audit_journalentry SET seq = -1 WHERE seq = %s", [a])
    tamper("UPDATE audit_journalentry SET seq = %s WHERE seq = %s", [a, b])
    tamper("UPDATE audit_journalentry SET seq = %s WHERE seq = -1", [b])
    assert JournalEntry.objects.get(seq=a).payload == {"n": 4}
    result = journal_verify()
    assert result.first_bad_seq == a


def test_a_recomputed_chain_without_the_key_still_fails(in_acme: Any) -> None:
    """An attacker who rewrites a hash without the key (plain SHA-256) is caught."""
    import hashlib

    entries = _write(3)
    forged = hashlib.sha256(b"forged").hexdigest()
    tamper("UPDATE audit_journalentry SET hash = %s WHERE seq = %s", [forged, entries[1].seq])
    assert journal_verify().first_bad_seq == entries[1].seq


def test_a_truncated_tail_is_detected_through_the_exported_checkpoint(
    in_acme: Any, django_capture_on_commit_callbacks: Any, checkpoint_dir: Path
) -> None:
    entries = _write(10)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint = journal_checkpoint()
    assert checkpoint is not None and checkpoint.seq == entries[-1].seq
    head = JournalHead.objects.get(pk=1)
    exported = checkpoint_file(in_acme.schema_name, head.journal_id)
    assert exported.parent == checkpoint_dir
    line = json.loads(exported.read_text().splitlines()[-1])
    assert (line["seq"], line["hash"]) == (checkpoint.seq, checkpoint.hash)

    # Remove the newest entries, the checkpoint rows and rewind the head: the database alone
    # now looks consistent.
    cut = entries[6].seq
    tamper("DELETE FROM audit_journalentry WHERE seq >= %s", [cut])
    tamper("DELETE FROM audit_journalcheckpoint")
    prev = JournalEntry.objects.get(seq=cut - 1)
    tamper("UPDATE audit_journalhead SET last_seq = %s, last_hash = %s", [prev.seq, prev.hash])
    assert journal_verify(use_exported=False).ok

    result = journal_verify()
    assert not result.ok
    assert result.first_bad_seq == cut
    assert "checkpointed" in result.first_problem.reason  # type: ignore[union-attr]


def test_a_truncated_tail_is_detected_through_the_head(in_acme: Any) -> None:
    entries = _write(6)
    tamper("DELETE FROM audit_journalentry WHERE seq >= %s", [entries[4].seq])
    assert journal_verify().first_bad_seq == entries[4].seq


def test_a_forged_exported_checkpoint_is_reported(in_acme: Any, checkpoint_dir: Path) -> None:
    _write(2)
    head = JournalHead.objects.get(pk=1)
    path = checkpoint_file(in_acme.schema_name, head.journal_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "schema": in_acme.schema_name,
        "journal_id": str(head.journal_id),
        "seq": head.last_seq,
        "hash": head.last_hash,
        "created_at": timezone.now().isoformat(),
        "reason": "on_demand",
        "signature": "0" * 64,
    }
    path.write_text(json.dumps(record) + "\n")
    result = journal_verify()
    assert not result.ok and "signature" in result.first_problem.reason  # type: ignore[union-attr]


def test_checkpoints_are_signed_journaled_and_skipped_when_nothing_changed(
    in_acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _write(3)
    with django_capture_on_commit_callbacks(execute=True):
        first = journal_checkpoint(reason=JournalCheckpoint.Reason.PERIODIC, if_changed=True)
    assert first is not None
    entry = JournalEntry.objects.order_by("-seq").first()
    assert entry is not None and entry.kind == "journal.checkpoint"
    assert entry.payload["checkpoint_seq"] == first.seq and entry.seq == first.seq + 1
    # Nothing but the checkpoint entry since: the periodic run does nothing.
    assert journal_checkpoint(reason=JournalCheckpoint.Reason.PERIODIC, if_changed=True) is None
    _write(1)
    assert journal_checkpoint(reason=JournalCheckpoint.Reason.PERIODIC, if_changed=True) is not None
    assert journal_verify().ok


def _age(seqs: list[int], days: int) -> None:
    """Make entries look old. Their hash covers created_at, so rewrite them consistently,
    as if they had been written back then: recompute the chain from the first one."""
    from apps.audit import chain

    when = timezone.now() - timedelta(days=days)
    tamper("UPDATE audit_journalentry SET created_at = %s WHERE seq = ANY(%s)", [when, seqs])
    hasher = chain.hasher()
    rows = list(JournalEntry.objects.filter(seq__gte=min(seqs)).order_by("seq"))
    prev = JournalEntry.objects.filter(seq__lt=min(seqs)).order_by("-seq").values_list("hash", flat=True).first()
    if prev is None:
        head = JournalHead.objects.get(pk=1)
        prev = chain.genesis_hash(in_schema(), head.journal_id)
    for row in rows:
        body = chain.canonical(
            seq=row.seq,
            ts_micros=chain.timestamp_micros(row.created_at),
            kind=row.kind,
            severity=row.severity,
            actor_kind=row.actor_kind,
            actor_id=row.actor_id,
            actor_label=row.actor_label,
            crew_id=str(row.crew_id) if row.crew_id else None,
            mission_id=str(row.mission_id) if row.mission_id else None,
            agent_id=str(row.agent_id) if row.agent_id else None,
            request_id=row.request_id,
            payload=row.payload,
        )
        digest = hasher(prev, body)
        tamper("UPDATE audit_journalentry SET prev_hash = %s, hash = %s WHERE seq = %s", [prev, digest, row.seq])
        prev = digest
    tamper("UPDATE audit_journalhead SET last_hash = %s", [prev])


def in_schema() -> str:
    from django.db import connection

    return str(connection.schema_name)


def test_compaction_replaces_expired_entries_by_a_summary_and_verification_passes(
    in_acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    old_debug = _write(6, kind="test.chatter")
    kept = _write(2)  # info: kept forever by the default policy
    more_debug = _write(3, kind="test.chatter")
    recent_debug = _write(2, kind="test.chatter")
    _age([e.seq for e in [*old_debug, *kept, *more_debug]], days=40)
    assert journal_verify().ok

    with django_capture_on_commit_callbacks(execute=True):
        done = journal_compact()
    assert len(done) == 1
    compaction = done[0]
    assert compaction.removed == 9
    removed = {e.seq for e in [*old_debug, *more_debug]}
    assert not JournalEntry.objects.filter(seq__in=removed).exists()
    assert JournalEntry.objects.filter(seq__in=[e.seq for e in [*kept, *recent_debug]]).count() == 4
    summary = JournalEntry.objects.get(seq=compaction.summary_seq)
    assert summary.kind == "journal.compacted"
    assert summary.payload["removed_count"] == 9 and summary.payload["counts"] == {"test.chatter": 9}
    assert [run[:2] for run in summary.payload["removed_runs"]] == [
        [old_debug[0].seq, old_debug[-1].seq],
        [more_debug[0].seq, more_debug[-1].seq],
    ]
    assert compaction.checkpoint_seq == compaction.summary_seq
    result = journal_verify()
    assert result.ok, result.as_dict()
    assert result.compacted_runs == 2

    # A second compaction bridges across the first one's gap.
    retention_policy_set(severity="info", keep_days=10)
    _write(1)
    with django_capture_on_commit_callbacks(execute=True):
        second = journal_compact()
    assert second and second[0].removed >= 2
    result = journal_verify()
    assert result.ok, result.as_dict()


def test_deleting_outside_compaction_is_still_caught_after_a_compaction(
    in_acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    old = _write(4, kind="test.chatter")
    _age([e.seq for e in old[:2]], days=40)
    with django_capture_on_commit_callbacks(execute=True):
        journal_compact()
    tamper("DELETE FROM audit_journalentry WHERE seq = %s", [old[3].seq])
    assert journal_verify().first_bad_seq == old[3].seq


def test_a_forged_compaction_summary_does_not_excuse_a_deletion(in_acme: Any) -> None:
    entries = _write(5)
    victim = entries[2]
    tamper("DELETE FROM audit_journalentry WHERE seq = %s", [victim.seq])
    # Inserted directly, with a hash the attacker cannot compute correctly.
    tamper(
        "INSERT INTO audit_journalentry (seq, created_at, kind, severity, actor_kind, actor_id, actor_label, "
        "payload, prev_hash, hash) VALUES (%s, now(), 'journal.compacted', 'notice', 'system', 'system', 'system', "
        "%s::jsonb, %s, %s)",
        [
            entries[-1].seq + 1,
            json.dumps({"removed_runs": [[victim.seq, victim.seq, victim.prev_hash, victim.hash]]}),
            entries[-1].hash,
            "f" * 64,
        ],
    )
    assert journal_verify().first_bad_seq == victim.seq


def test_journal_verify_command_names_the_first_bad_sequence(in_acme: Any) -> None:
    entries = _write(5)
    out = StringIO()
    call_command("journal_verify", "--workspace", "acme", stdout=out)
    assert "OK" in out.getvalue()
    tamper("UPDATE audit_journalentry SET payload = '{\"n\": 7}'::jsonb WHERE seq = %s", [entries[1].seq])
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as excinfo:
        call_command("journal_verify", "--workspace", "acme", stdout=out, stderr=err)
    assert excinfo.value.code == 1
    assert f"first bad sequence: {entries[1].seq}" in err.getvalue()
