"""Verifying a workspace's journal: the chain, compaction bridges, the head and checkpoints.

What each tamper case looks like to the verifier:
- an edited entry: its recomputed HMAC differs from its stored hash;
- a deleted entry: a missing sequence number that no (authentic) compaction summary covers;
- a re-ordered pair: the sequence number is inside the HMAC, so both entries fail;
- a truncated tail: a signed checkpoint (in the database, and exported to a file outside it)
  names a sequence number that no longer exists, or the head is ahead of the last entry.
Entries are streamed in keyset chunks; hashing uses orjson and a pre-keyed HMAC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection as _connection
from django.db import transaction

from . import chain
from .checkpoints import CheckpointRecord, read_exported

connection: Any = _connection

CHUNK = 20_000
MAX_PROBLEMS = 50

_SELECT = (
    "SELECT seq, prev_hash, hash, (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint, kind, severity, "
    "actor_kind, actor_id, actor_label, crew_id::text, mission_id::text, agent_id::text, request_id, "
    "payload::text FROM audit_journalentry"
)


@dataclass(frozen=True)
class Problem:
    seq: int
    reason: str


@dataclass
class VerifyResult:
    schema: str
    entries: int = 0
    head_seq: int = 0
    checkpoints: int = 0
    compacted_runs: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return min(problem.seq for problem in self.problems) if self.problems else None

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda problem: problem.seq) if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "checkpoints": self.checkpoints,
            "compacted_runs": self.compacted_runs,
            "first_bad_seq": self.first_bad_seq,
            "problems": [{"seq": p.seq, "reason": p.reason} for p in sorted(self.problems, key=lambda p: p.seq)],
            "seconds": round(self.seconds, 3),
        }


def journal_verify(*, use_exported: bool = True) -> VerifyResult:
    """Verify the active workspace's journal. Never raises on tampering: read the result."""
    started = time.perf_counter()
    schema = str(connection.schema_name)
    result = VerifyResult(schema=schema)
    if connection.in_atomic_block:
        _verify(result, use_exported)
    else:
        # One snapshot for head, entries and checkpoints, so concurrent appends or a
        # compaction do not look like tampering.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _verify(result, use_exported)
    result.seconds = time.perf_counter() - started
    return result


def _verify(result: VerifyResult, use_exported: bool) -> None:
    schema = result.schema
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_seq, last_hash, journal_id FROM audit_journalhead WHERE id = 1")
        head = cursor.fetchone()
    if head is None:
        result.problems.append(Problem(1, "the journal head row is missing"))
        return
    head_seq, head_hash, journal_id = int(head[0]), str(head[1]), head[2]
    result.head_seq = head_seq
    entry_hash = chain.hasher()

    def add(seq: int, reason: str) -> None:
        if len(result.problems) < MAX_PROBLEMS:
            result.problems.append(Problem(seq, reason))

    # Runs removed by compaction, keyed by their first sequence number. Only summaries whose
    # own HMAC verifies are trusted: a forged summary cannot excuse a deleted entry.
    runs: dict[int, tuple[int, str, str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_SELECT + " WHERE kind = 'journal.compacted' ORDER BY seq")
        for row in cursor.fetchall():
            if _row_hash(entry_hash, row) != row[2]:
                continue  # reported by the main pass
            for first, last, prev_of_first, hash_of_last in orjson.loads(row[13]).get("removed_runs", []):
                runs[int(first)] = (int(last), str(prev_of_first), str(hash_of_last))
    result.compacted_runs = len(runs)

    checkpoints = _checkpoints(schema, journal_id, use_exported, add)
    result.checkpoints = len(checkpoints)
    wanted = {record.seq for record in checkpoints}
    seen: dict[int, str] = {}

    expected_seq = 1
    expected_prev = chain.genesis_hash(schema, journal_id)
    last_seq = 0
    count = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(_SELECT + " WHERE seq > %s ORDER BY seq LIMIT %s", [last_seq, CHUNK])
            rows = cursor.fetchall()
            if not rows:
                break
            for row in rows:
                seq = row[0]
                while seq > expected_seq:
                    run = runs.get(expected_seq)
                    if run is None:
                        add(expected_seq, "entry missing (deleted outside compaction)")
                        expected_seq = seq
                        break
                    last, prev_of_first, hash_of_last = run
                    if prev_of_first != expected_prev:
                        add(expected_seq, "compaction summary does not link to the preceding entry")
                    if last in wanted:
                        seen[last] = hash_of_last
                    expected_prev = hash_of_last
                    expected_seq = last + 1
                prev_hash, stored = row[1], row[2]
                if prev_hash != expected_prev:
                    add(seq, "previous hash does not match the preceding entry")
                if _row_hash(entry_hash, row) != stored:
                    add(seq, "hash mismatch: the entry was altered")
                if seq in wanted:
                    seen[seq] = stored
                expected_prev = stored
                expected_seq = seq + 1
                count += 1
            last_seq = rows[-1][0]
    # Runs compacted right up to the head end the chain too.
    while expected_seq in runs:
        last, prev_of_first, hash_of_last = runs[expected_seq]
        if prev_of_first != expected_prev:
            add(expected_seq, "compaction summary does not link to the preceding entry")
        expected_prev, expected_seq = hash_of_last, last + 1
    chain_end = expected_seq - 1
    result.entries = count

    if head_seq > chain_end:
        add(chain_end + 1, f"entries #{chain_end + 1}..#{head_seq} are missing (the head is at #{head_seq})")
    elif head_seq < chain_end:
        add(head_seq + 1, f"entries after the head (#{head_seq}) exist")
    elif head_seq and head_hash != expected_prev:
        add(head_seq, "the head hash does not match the last entry")

    for record in checkpoints:
        if record.seq > chain_end:
            add(chain_end + 1, f"entries up to #{record.seq} were checkpointed ({record.source}) but are missing")
        elif record.seq > 0 and record.seq not in seen:
            add(record.seq, f"the checkpointed entry is missing ({record.source})")
        elif record.seq > 0 and seen[record.seq] != record.hash:
            add(record.seq, f"hash differs from the signed checkpoint ({record.source})")


def _row_hash(entry_hash: Any, row: tuple[Any, ...]) -> str:
    body = chain.canonical_values(
        row[0], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], row[11], row[12], orjson.loads(row[13])
    )
    return str(entry_hash(row[1], body))


def _checkpoints(schema: str, journal_id: Any, use_exported: bool, add: Any) -> list[CheckpointRecord]:
    records: list[CheckpointRecord] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, seq, hash, created_at, reason, signature FROM audit_journalcheckpoint ORDER BY id")
        for pk, seq, hash_, created_at, reason, signature in cursor.fetchall():
            records.append(
                CheckpointRecord(
                    schema=schema,
                    journal_id=str(journal_id or ""),
                    seq=int(seq),
                    hash=str(hash_),
                    created_at=created_at.isoformat(),
                    reason=str(reason),
                    signature=str(signature),
                    source=f"database checkpoint {pk}",
                )
            )
    if use_exported:
        exported, problems = read_exported(schema, journal_id)
        for problem in problems:
            add(1, problem)
        records.extend(exported)
    valid: list[CheckpointRecord] = []
    for record in records:
        if record.schema != schema or record.journal_id != str(journal_id or ""):
            add(max(record.seq, 1), f"checkpoint of another journal ({record.source})")
        elif not record.signature_valid():
            add(max(record.seq, 1), f"checkpoint signature is invalid ({record.source})")
        else:
            valid.append(record)
    return valid
