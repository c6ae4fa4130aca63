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

import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from django.db import connection as _connection
from django.db import transaction
from psycopg import sql

from . import chain
from .checkpoints import CheckpointRecord, read_exported

connection: Any = _connection

CHUNK = 20_000
MAX_PROBLEMS = 50

_SELECT = (
    "SELECT seq, prev_hash, hash, (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint, kind, severity, "
    "actor_kind, actor_id, actor_label, crew_id::text, mission_id::text, agent_id::text, request_id, "
    "payload::text"
)
# Below this many entries, starting processes costs more than it saves.
PARALLEL_MIN_ENTRIES = 20_000


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


def journal_verify(*, use_exported: bool = True, jobs: int = 1) -> VerifyResult:
    """Verify the active workspace's journal. Never raises on tampering: read the result.

    ``jobs`` > 1 recomputes the hashes of a long journal in that many processes at once
    (forked, each with its own connection reading the same snapshot), for the command line;
    code running in a server process leaves it at 1. Inside a caller's transaction it is
    always 1: other connections cannot see that transaction's own changes.
    """
    started = time.perf_counter()
    schema = str(connection.schema_name)
    result = VerifyResult(schema=schema)
    if connection.in_atomic_block:
        _verify(result, use_exported, jobs=1)
    else:
        # One snapshot for head, entries and checkpoints, so concurrent appends or a
        # compaction do not look like tampering.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _verify(result, use_exported, jobs=jobs)
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class _Segment:
    """What walking the entries of one sequence range found. ``first`` is the first entry's
    (seq, prev_hash), which the range before it must link to; ``end_seq``/``end_hash`` are
    what the range after it must link to."""

    first: tuple[int, str] | None = None
    end_seq: int = 0
    end_hash: str = ""
    count: int = 0
    problems: list[Problem] = field(default_factory=list)
    seen: dict[int, str] = field(default_factory=dict)


class _Chain:
    """The walk along the chain: each entry must follow the one before it, or the compaction
    run that replaced the entries between them (``runs``, keyed by a run's first sequence)."""

    def __init__(
        self, *, seq: int, prev: str, runs: dict[int, tuple[int, str, str]], wanted: set[int], add: Any
    ) -> None:
        self.expected_seq, self.expected_prev = seq, prev
        self.runs, self.wanted, self.add = runs, wanted, add
        self.seen: dict[int, str] = {}

    def link(self, seq: int, prev_hash: str) -> None:
        """Check that an entry at ``seq`` whose previous hash is ``prev_hash`` comes next."""
        while seq > self.expected_seq:
            run = self.runs.get(self.expected_seq)
            if run is None:
                self.add(self.expected_seq, "entry missing (deleted outside compaction)")
                self.expected_seq = seq
                break
            last, prev_of_first, hash_of_last = run
            if prev_of_first != self.expected_prev:
                self.add(self.expected_seq, "compaction summary does not link to the preceding entry")
            if last in self.wanted:
                self.seen[last] = hash_of_last
            self.expected_prev = hash_of_last
            self.expected_seq = last + 1
        if prev_hash != self.expected_prev:
            self.add(seq, "previous hash does not match the preceding entry")

    def advance(self, seq: int, stored_hash: str) -> None:
        if seq in self.wanted:
            self.seen[seq] = stored_hash
        self.expected_prev = stored_hash
        self.expected_seq = seq + 1

    def join(self, segment: _Segment) -> None:
        """Continue with a range walked on its own (see _walk)."""
        if segment.first is None:
            return
        self.link(*segment.first)
        for problem in segment.problems:
            self.add(problem.seq, problem.reason)
        self.seen.update(segment.seen)
        self.expected_seq, self.expected_prev = segment.end_seq, segment.end_hash

    def close_runs(self) -> None:
        """Runs compacted right up to the head end the chain too."""
        while self.expected_seq in self.runs:
            last, prev_of_first, hash_of_last = self.runs[self.expected_seq]
            if prev_of_first != self.expected_prev:
                self.add(self.expected_seq, "compaction summary does not link to the preceding entry")
            self.expected_prev, self.expected_seq = hash_of_last, last + 1


def _walk(
    rows: Iterator[tuple[Any, ...]], runs: dict[int, tuple[int, str, str]], wanted: set[int], entry_hash: Any
) -> _Segment:
    """Recompute every entry's hash and follow the links inside one range of rows (ordered by
    seq); the link of the range's first entry is left to whoever joins the ranges."""
    segment = _Segment()

    def add(seq: int, reason: str) -> None:
        if len(segment.problems) < MAX_PROBLEMS:
            segment.problems.append(Problem(seq, reason))

    walker: _Chain | None = None
    count = 0
    for row in rows:
        seq, prev_hash, stored = row[0], row[1], row[2]
        if walker is None:
            segment.first = (seq, prev_hash)
            walker = _Chain(seq=seq, prev=prev_hash, runs=runs, wanted=wanted, add=add)
        else:
            walker.link(seq, prev_hash)
        if _row_hash(entry_hash, row) != stored:
            add(seq, "hash mismatch: the entry was altered")
        walker.advance(seq, stored)
        count += 1
    if walker is not None:
        segment.end_seq, segment.end_hash, segment.seen = walker.expected_seq, walker.expected_prev, walker.seen
    segment.count = count
    return segment


def _rows(cursor: Any, table: str, low: int, high: int | None) -> Iterator[tuple[Any, ...]]:
    """Entries with low <= seq (<= high), in keyset chunks."""
    last = low - 1
    bound = "" if high is None else f" AND seq <= {int(high)}"
    while True:
        cursor.execute(f"{_SELECT} FROM {table} WHERE seq > %s{bound} ORDER BY seq LIMIT %s", [last, CHUNK])
        rows = cursor.fetchall()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def _verify(result: VerifyResult, use_exported: bool, *, jobs: int) -> None:
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
        cursor.execute(f"{_SELECT} FROM audit_journalentry WHERE kind = 'journal.compacted' ORDER BY seq")
        for row in cursor.fetchall():
            if _row_hash(entry_hash, row) != row[2]:
                continue  # reported by the main pass
            for first, last, prev_of_first, hash_of_last in orjson.loads(row[13]).get("removed_runs", []):
                runs[int(first)] = (int(last), str(prev_of_first), str(hash_of_last))
    result.compacted_runs = len(runs)

    checkpoints = _checkpoints(schema, journal_id, use_exported, add)
    result.checkpoints = len(checkpoints)
    wanted = {record.seq for record in checkpoints}

    walker = _Chain(seq=1, prev=chain.genesis_hash(schema, journal_id), runs=runs, wanted=wanted, add=add)
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(seq) FROM audit_journalentry")
        max_seq = cursor.fetchone()[0] or 0
        if jobs > 1 and max_seq >= PARALLEL_MIN_ENTRIES:
            segments = _walk_in_processes(schema, max_seq, jobs, runs, wanted)
        else:
            segments = [_walk(_rows(cursor, "audit_journalentry", 1, None), runs, wanted, entry_hash)]
    for segment in segments:
        walker.join(segment)
        result.entries += segment.count
    walker.close_runs()
    seen = walker.seen
    chain_end = walker.expected_seq - 1
    expected_prev = walker.expected_prev

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


def _walk_in_processes(
    schema: str, max_seq: int, jobs: int, runs: dict[int, tuple[int, str, str]], wanted: set[int]
) -> list[_Segment]:
    """Walk [1, max_seq] in ``jobs`` equal ranges, one forked process each, all reading the
    snapshot of the caller's (repeatable read) transaction; the segments in order.

    A forked child never touches the parent's connection (it opens its own, and leaves
    through os._exit, which closes nothing of the parent's).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]
    params = {key: value for key, value in connection.get_connection_params().items() if key in _CONNECT_KEYS}
    table = sql.Identifier(schema, "audit_journalentry").as_string()
    step = -(-max_seq // jobs)
    bounds: list[tuple[int, int | None]] = [(low, min(low + step - 1, max_seq)) for low in range(1, max_seq + 1, step)]
    bounds[-1] = (bounds[-1][0], None)  # the last range takes anything past max_seq too
    context = multiprocessing.get_context("fork")
    pipes, processes = [], []
    for low, high in bounds:
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_walk_child,
            args=(sender, params, snapshot, table, low, high, runs, wanted),
            name=f"journal-verify-{low}",
            daemon=True,
        )
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    segments: list[_Segment] = []
    failure: str | None = None
    for receiver, process in zip(pipes, processes, strict=True):
        try:
            status, value = receiver.recv()
        except EOFError:
            status, value = "error", f"verifier process {process.name} exited with {process.exitcode}"
        process.join()
        if status == "ok":
            segments.append(value)
        else:
            failure = failure or str(value)
    if failure is not None:
        raise RuntimeError(f"journal verification failed to run: {failure}")
    return segments


_CONNECT_KEYS = {
    "dbname", "user", "password", "host", "port", "options", "sslmode", "sslrootcert", "sslcert", "sslkey",
    "connect_timeout", "client_encoding", "target_session_attrs",
}  # fmt: skip


def _walk_child(
    sender: Any,
    params: dict[str, Any],
    snapshot: str,
    table: str,
    low: int,
    high: int | None,
    runs: dict[int, tuple[int, str, str]],
    wanted: set[int],
) -> None:
    try:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            with conn.cursor() as cursor:
                segment = _walk(_rows(cursor, table, low, high), runs, wanted, chain.hasher())
            conn.execute("COMMIT")
        sender.send(("ok", segment))
    except BaseException as exc:  # reported to the parent, which fails the verification
        sender.send(("error", repr(exc)))
    finally:
        sender.close()


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
