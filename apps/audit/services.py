"""Writing the journal. Every governed change calls ``journal_append`` in the transaction that
makes the change.

The entry is written in the caller's transaction: if the change rolls back, so does the entry;
if the entry cannot be written, the exception propagates and the change rolls back with it.
Nothing here swallows an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db import connection as _connection
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from apps.core.context import SYSTEM, Actor, current_actor, current_request_id
from apps.core.db import durability_barrier, run_prepared
from apps.core.errors import Conflict, GovernanceUnavailable, NotFound, ValidationFailed

from . import chain, checkpoints, live
from .catalog import Severity, get_kind
from .checkpoints import CheckpointRecord
from .models import JournalCheckpoint, JournalEntry, JournalHead, MissionFork, RetentionPolicy

logger = logging.getLogger(__name__)

# django-tenants adds schema_name to the connection; the stubs do not know.
connection: Any = _connection

_COLUMNS = (
    "seq",
    "created_at",
    "kind",
    "severity",
    "actor_kind",
    "actor_id",
    "actor_label",
    "crew_id",
    "mission_id",
    "agent_id",
    "request_id",
    "payload",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class NewEntry:
    """One entry for ``journal_append_many`` (a mapping with these keys works too)."""

    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    severity: str | None = None
    actor: Actor | None = None
    crew_id: uuid.UUID | str | None = None
    mission_id: uuid.UUID | str | None = None
    agent_id: uuid.UUID | str | None = None
    request_id: str | None = None


@dataclass
class _Prepared:
    kind: str
    severity: str
    actor: Actor
    crew_id: str | None
    mission_id: str | None
    agent_id: str | None
    request_id: str | None
    payload: dict[str, Any]


def _uuid_text(value: uuid.UUID | str | None, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a UUID.", code="invalid_journal_reference", details={name: value}
        ) from None


def _prepare(entry: NewEntry | Mapping[str, Any], default_actor: Actor, default_request_id: str | None) -> _Prepared:
    if not isinstance(entry, NewEntry):
        unknown = set(entry) - set(NewEntry.__dataclass_fields__)
        if unknown:
            raise ValidationFailed(
                f"Unknown journal entry fields: {sorted(unknown)}.", details={"fields": sorted(unknown)}
            )
        entry = NewEntry(**entry)
    kind = get_kind(entry.kind)
    severity = entry.severity or kind.severity
    Severity.rank(severity)
    actor = entry.actor or default_actor
    if len(actor.id) > 64 or len(actor.label) > 200:
        actor = Actor(kind=actor.kind, id=actor.id[:64], label=actor.label[:200])
    request_id = entry.request_id if entry.request_id is not None else default_request_id
    return _Prepared(
        kind=kind.name,
        severity=severity,
        actor=actor,
        crew_id=_uuid_text(entry.crew_id, "crew_id"),
        mission_id=_uuid_text(entry.mission_id, "mission_id"),
        agent_id=_uuid_text(entry.agent_id, "agent_id"),
        request_id=request_id[:64] if request_id else None,
        payload=kind.validate(entry.payload),
    )


def _prepare_all(entries: Sequence[NewEntry | Mapping[str, Any]]) -> list[_Prepared]:
    """Validate ``entries``, with the current actor and request id where they name none."""
    default_actor, default_request_id = current_actor(), current_request_id()
    return [_prepare(entry, default_actor, default_request_id) for entry in entries]


def _db() -> Any:
    """The DatabaseWrapper itself: each attribute read through the ``connection`` proxy costs
    a thread-local lookup, and an append reads a dozen of them."""
    return connections[DEFAULT_DB_ALIAS]


def _schema_name() -> str:
    schema = getattr(_db(), "schema_name", None)
    if not schema or schema == get_public_schema_name():
        raise GovernanceUnavailable(
            "The journal is per workspace: activate a workspace schema before writing.",
            code="journal_unavailable",
        )
    return str(schema)


def journal_append(
    *,
    kind: str,
    payload: Mapping[str, Any],
    severity: str | None = None,
    actor: Actor | None = None,
    crew_id: uuid.UUID | str | None = None,
    mission_id: uuid.UUID | str | None = None,
    agent_id: uuid.UUID | str | None = None,
    request_id: str | None = None,
) -> JournalEntry:
    """Append one entry to the active workspace's journal, in the current transaction.

    The entry locks the workspace's journal head until the transaction ends (that is what
    keeps the sequence gapless), so append as late as possible in a transaction and never
    hold one open across a model or tool call.

    ``actor`` defaults to ``apps.core.context.current_actor()`` and ``request_id`` to
    ``current_request_id()``. Raises ValidationFailed for an unknown kind or a payload that
    does not match its schema, GovernanceUnavailable when the journal cannot be written.
    """
    entry = NewEntry(
        kind=kind,
        payload=payload,
        severity=severity,
        actor=actor,
        crew_id=crew_id,
        mission_id=mission_id,
        agent_id=agent_id,
        request_id=request_id,
    )
    return journal_append_many(entries=[entry])[0]


def journal_append_many(*, entries: Sequence[NewEntry | Mapping[str, Any]]) -> list[JournalEntry]:
    """Append several entries in one transaction (one statement)."""
    prepared = _prepare_all(entries)
    if not prepared:
        return []
    schema = _schema_name()
    try:
        db = _db()
        if not db.in_atomic_block and db.get_autocommit():
            # Standalone: our own transaction, on disk before we return (see _append_standalone).
            written = _append_standalone(schema, prepared)
            live.publish(schema, written)
            return written
        # savepoint=False: inside a caller's transaction a failure here must doom the whole
        # transaction (the change must not commit without its entry); it also saves round trips.
        with transaction.atomic(savepoint=False):
            committed, _flush_pending = _write(schema, prepared, async_commit=False)
            transaction.on_commit(lambda: live.publish(schema, committed))
        return committed
    except (DatabaseError, psycopg.Error) as exc:
        raise GovernanceUnavailable(
            "The journal could not be written; the change was not made.", code="journal_unavailable"
        ) from exc


def _append_standalone(schema: str, prepared: list[_Prepared]) -> list[JournalEntry]:
    """Write ``prepared`` in a transaction of our own; return once it is on disk.

    The append is one statement, which is the whole transaction. Whoever else wants the head
    decides how its commit waits for the disk. Alone, the commit itself waits for the flush
    (one round trip in all). With other threads of this process queued behind it (they take
    turns per workspace), or when the head was held by another transaction, another
    process's append typically (the append function notices, audit/0006), it commits without
    waiting, which frees the head at once, and this waits for the flush afterwards (see
    apps.core.db): queued appenders then share their fsyncs instead of each holding the head
    through its own.
    """
    writer = _writer(schema)
    with writer.turn() as queued:
        # Queued: asynchronous. Otherwise the server decides (None), by the head's lock.
        written, flush_pending = _write(schema, prepared, async_commit=True if queued else None)
    if flush_pending:
        durability_barrier()
    return written


def _write(schema: str, prepared: list[_Prepared], *, async_commit: bool | None) -> tuple[list[JournalEntry], bool]:
    """Append ``prepared`` behind the head: one call of the schema's append function, which
    locks the head, chains (HMAC) and inserts the entries and moves the head inside one
    statement, so no writer ever holds the head across a round trip (see migration
    audit/0005). The entries, and whether the transaction commits without waiting for the
    disk. Standalone, that statement is the whole transaction; only then may
    ``async_commit`` be true or None (see _append_standalone)."""
    batch = JournalBatch(schema, timezone.now(), prepared)
    rows = run_prepared(_append_sql(schema), [chain.key(), async_commit, batch.now, batch.documents()])
    if len(rows) != len(prepared):
        raise GovernanceUnavailable("The journal did not take every entry.", code="journal_unavailable")
    written = batch.entries([row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows])
    return written, rows[0][3] == "off"


@dataclass(frozen=True)
class JournalBatch:
    """Entries on their way into a statement of another app that journals through the
    schema's append function itself (the budgets' reserve and close functions): the
    documents that function takes, and the entries it wrote, from what it returns."""

    schema: str
    now: datetime
    prepared: list[_Prepared]

    @classmethod
    def of(cls, entries: Sequence[NewEntry | Mapping[str, Any]], *, now: datetime | None = None) -> JournalBatch:
        """Validate ``entries`` (ValidationFailed, as journal_append_many) for the active
        workspace. ``now`` is their time: the statement must pass the same to the function."""
        prepared = _prepare_all(entries)
        return cls(_schema_name(), now or timezone.now(), prepared)

    def documents(self) -> list[str]:
        ts = chain.timestamp_micros(self.now)
        return [
            chain.entry_document(
                ts,
                item.kind,
                item.severity,
                item.actor.kind,
                item.actor.id,
                item.actor.label,
                item.crew_id,
                item.mission_id,
                item.agent_id,
                item.request_id,
                item.payload,
            )
            for item in self.prepared
        ]

    def _check_written(self, seqs: Sequence[int], prev_hashes: Sequence[str], hashes: Sequence[str]) -> None:
        if not (len(seqs) == len(prev_hashes) == len(hashes) == len(self.prepared)):
            raise GovernanceUnavailable("The journal did not take every entry.", code="journal_unavailable")

    def entries(self, seqs: Sequence[int], prev_hashes: Sequence[str], hashes: Sequence[str]) -> list[JournalEntry]:
        self._check_written(seqs, prev_hashes, hashes)
        now = self.now
        # Positional, in field order, as Django builds rows it reads (much cheaper than kwargs).
        return [
            JournalEntry.from_db(
                "default",
                _COLUMNS,
                (
                    seq,
                    now,
                    item.kind,
                    item.severity,
                    item.actor.kind,
                    item.actor.id,
                    item.actor.label,
                    uuid.UUID(item.crew_id) if item.crew_id else None,
                    uuid.UUID(item.mission_id) if item.mission_id else None,
                    uuid.UUID(item.agent_id) if item.agent_id else None,
                    item.request_id,
                    item.payload,
                    prev_hash,
                    digest,
                ),
            )
            for item, seq, prev_hash, digest in zip(self.prepared, seqs, prev_hashes, hashes, strict=True)
        ]

    def publish(self, written: list[JournalEntry] | live.Later) -> None:
        """To live subscribers, once the writing transaction has committed."""
        if _db().in_atomic_block:
            transaction.on_commit(lambda: live.publish(self.schema, written))
        else:
            live.publish(self.schema, written)

    def publish_written(self, seqs: Sequence[int], prev_hashes: Sequence[str], hashes: Sequence[str]) -> None:
        """``publish(entries(...))``, with the entries built by the live publisher only if it
        pushes them (the statement's results are checked here, as ``entries`` does)."""
        self._check_written(seqs, prev_hashes, hashes)
        if not seqs:
            return  # nothing was written: nothing to push
        seqs, prev_hashes, hashes = list(seqs), list(prev_hashes), list(hashes)
        self.publish(live.Later(max(seqs), lambda: self.entries(seqs, prev_hashes, hashes)))


class _Writer:
    """This process's standalone appenders of one workspace take turns here.

    Only those take a turn, and they never hold it while waiting for anything that needs it
    (an append inside a caller's transaction does not take one), so it cannot deadlock with
    the head's row lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._wanting = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[bool]:
        """Hold the turn; yields whether other threads are queued behind this one."""
        with self._count_lock:
            self._wanting += 1
        try:
            with self._lock:
                with self._count_lock:
                    queued = self._wanting > 1
                yield queued
        finally:
            with self._count_lock:
                self._wanting -= 1


_writers: dict[tuple[str, str], _Writer] = {}
_writers_guard = threading.Lock()


def _writer(schema: str) -> _Writer:
    key = (str(_db().settings_dict["NAME"]), schema)
    writer = _writers.get(key)
    if writer is None:
        with _writers_guard:
            writer = _writers.setdefault(key, _Writer())
    return writer


# The function's name is qualified with the schema, and the function qualifies its tables,
# so the search path does not matter (see apps.core.db.run_prepared).
@functools.lru_cache(maxsize=1024)
def _append_sql(schema: str) -> str:
    # The commit mode is read after the function ran: it may have chosen (audit/0006).
    return (
        "SELECT out_seq, out_prev_hash, out_hash, current_setting('synchronous_commit') "  # noqa: S608
        f'FROM "{schema}".audit_journal_append(%b, %s::boolean, %s, %b)'
    )


# --- checkpoints ----------------------------------------------------------------------------


def journal_checkpoint(
    *, reason: str = JournalCheckpoint.Reason.ON_DEMAND, if_changed: bool = False
) -> JournalCheckpoint | None:
    """Sign the current head (sequence, hash, time), store it, journal it, and export it to
    the checkpoint file and the log once the transaction commits.

    With ``if_changed`` (the periodic run), nothing happens when no entry other than
    checkpoints was written since the last checkpoint.
    """
    schema = _schema_name()
    with transaction.atomic():
        # FOR UPDATE: the head we sign stays the head until our own checkpoint entry follows it.
        head = JournalHead.objects.select_for_update().get(pk=1)
        if head.last_seq == 0:
            return None
        if if_changed:
            last = JournalCheckpoint.objects.order_by("-seq", "-id").first()
            if last is not None and not (
                JournalEntry.objects.filter(seq__gt=last.seq).exclude(kind="journal.checkpoint").exists()
            ):
                return None
        record = CheckpointRecord(
            schema=schema,
            journal_id=str(head.journal_id or ""),
            seq=head.last_seq,
            hash=head.last_hash,
            created_at=timezone.now().isoformat(),
            reason=str(reason),
            signature="",
        )
        signed = dataclasses.replace(record, signature=chain.sign(record.message()))
        checkpoint = JournalCheckpoint(
            seq=signed.seq,
            hash=signed.hash,
            created_at=datetime.fromisoformat(signed.created_at),
            reason=signed.reason,
            signature=signed.signature,
        )
        checkpoint.full_clean()
        checkpoint.save()
        journal_append(
            kind="journal.checkpoint",
            payload={
                "checkpoint_seq": signed.seq,
                "checkpoint_hash": signed.hash,
                "reason": signed.reason,
                "signature": signed.signature,
            },
            actor=SYSTEM,
        )
        transaction.on_commit(lambda: _export_checkpoint(signed))
    return checkpoint


def _export_checkpoint(record: CheckpointRecord) -> None:
    try:
        checkpoints.export(record)
    except OSError:
        # The checkpoint is committed in the database; only its outside copy is missing.
        logger.exception("could not export journal checkpoint %s #%s", record.schema, record.seq)


def journal_checkpoint_all(*, reason: str = JournalCheckpoint.Reason.PERIODIC) -> dict[str, int | None]:
    """Checkpoint every active workspace whose journal moved (for the worker's periodic loop).

    Crosses workspaces on purpose: it is the system's own housekeeping.
    """
    from apps.tenants.access import workspace_schema
    from apps.tenants.models import Workspace

    done: dict[str, int | None] = {}
    for workspace in Workspace.objects.filter(is_active=True).order_by("slug"):
        try:
            with workspace_schema(workspace):
                checkpoint = journal_checkpoint(reason=reason, if_changed=reason == JournalCheckpoint.Reason.PERIODIC)
        except Exception:
            # One broken workspace must not stop the others' checkpoints.
            logger.exception("journal checkpoint of %s failed", workspace.slug)
            checkpoint = None
        done[workspace.slug] = checkpoint.seq if checkpoint else None
    return done


# --- retention and compaction ------------------------------------------------------------------


def retention_policy_set(*, severity: str, keep_days: int | None) -> RetentionPolicy:
    Severity.rank(severity)
    if keep_days is not None and keep_days < 1:
        raise ValidationFailed(details={"keep_days": ["Keep entries at least one day (or forever: null)."]})
    with transaction.atomic():
        policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(severity=severity)
        previous = policy.keep_days
        policy.keep_days = keep_days
        policy.full_clean()
        policy.save()
        if previous != keep_days:
            journal_append(
                kind="journal.retention_changed",
                payload={"severity": severity, "keep_days": keep_days, "previous_keep_days": previous},
            )
    return policy


@dataclass(frozen=True)
class Compaction:
    summary_seq: int
    removed: int
    from_seq: int
    to_seq: int
    checkpoint_seq: int | None


# Never compacted: the summaries and checkpoints the verifier relies on, and forks.
PROTECTED_KINDS = frozenset({"journal.compacted", "journal.checkpoint", "fork.created"})
_MAX_RUNS_PER_SUMMARY = 5_000


def journal_compact(*, now: datetime | None = None, up_to_seq: int | None = None) -> list[Compaction]:
    """Replace entries whose severity's retention has expired by summary entries.

    Each summary (``journal.compacted``) lists the removed runs with the hashes that bridge
    them, so verification still passes; a signed checkpoint follows each summary. Entries
    that a checkpoint names are kept, so every checkpoint stays checkable.
    """
    _schema_name()
    now = now or timezone.now()
    cutoffs = {
        severity: now - timedelta(days=keep_days)
        for severity, keep_days in RetentionPolicy.objects.values_list("severity", "keep_days")
        if keep_days is not None
    }
    if not cutoffs:
        return []
    done: list[Compaction] = []
    with transaction.atomic():
        head = JournalHead.objects.select_for_update().get(pk=1)
        limit = min(up_to_seq or head.last_seq, head.last_seq)
        condition = Q()
        for severity, cutoff in cutoffs.items():
            condition |= Q(severity=severity, created_at__lt=cutoff)
        anchored = set(JournalCheckpoint.objects.values_list("seq", flat=True))
        removable = (
            JournalEntry.objects.filter(condition, seq__lte=limit)
            .exclude(kind__in=PROTECTED_KINDS)
            .exclude(seq__in=anchored)
            .order_by("seq")
            .values_list("seq", "kind", "severity", "prev_hash", "hash")
        )
        runs: list[list[Any]] = []
        counts: dict[str, int] = {}
        severities: set[str] = set()
        removed = 0
        for seq, kind, severity, prev_hash, digest in removable.iterator(chunk_size=5000):
            if runs and runs[-1][1] == seq - 1:
                runs[-1][1] = seq
                runs[-1][3] = digest
            else:
                if len(runs) >= _MAX_RUNS_PER_SUMMARY:
                    done.append(_compact_runs(runs, counts, severities, removed, now))
                    runs, counts, severities, removed = [], {}, set(), 0
                runs.append([seq, seq, prev_hash, digest])
            counts[kind] = counts.get(kind, 0) + 1
            severities.add(severity)
            removed += 1
        if runs:
            done.append(_compact_runs(runs, counts, severities, removed, now))
    return done


def _compact_runs(
    runs: list[list[Any]], counts: dict[str, int], severities: set[str], removed: int, now: datetime
) -> Compaction:
    with connection.cursor() as cursor:
        # The one path the append-only trigger lets through; the flag ends with the statement.
        cursor.execute("SET LOCAL quarterdeck.journal_compaction = 'on'")
        try:
            for first, last, _prev, _hash in runs:
                cursor.execute("DELETE FROM audit_journalentry WHERE seq BETWEEN %s AND %s", [first, last])
        finally:
            cursor.execute("SET LOCAL quarterdeck.journal_compaction = 'off'")
    summary = journal_append(
        kind="journal.compacted",
        payload={
            "from_seq": runs[0][0],
            "to_seq": runs[-1][1],
            "before": now.isoformat(),
            "severities": sorted(severities, key=Severity.rank),
            "removed_count": removed,
            "removed_runs": runs,
            "counts": counts,
        },
        actor=SYSTEM,
    )
    checkpoint = journal_checkpoint(reason=JournalCheckpoint.Reason.COMPACTION)
    return Compaction(
        summary_seq=summary.seq,
        removed=removed,
        from_seq=runs[0][0],
        to_seq=runs[-1][1],
        checkpoint_seq=checkpoint.seq if checkpoint else None,
    )


# --- forks ----------------------------------------------------------------------------------


def mission_fork(
    *, source_mission_id: uuid.UUID | str, from_seq: int, reason: str = "", new_mission_id: uuid.UUID | None = None
) -> MissionFork:
    """Record that a new mission starts from ``source_mission_id``'s state at ``from_seq``.

    The ``fork.created`` entry is the new mission's first entry; replaying the new mission
    replays the source up to ``from_seq`` and continues with the new mission's own entries.
    The runtime maps the same point to its LangGraph checkpoint.
    """
    from .replay import replay_mission

    source = uuid.UUID(str(source_mission_id))
    with transaction.atomic():
        source_entry = JournalEntry.objects.filter(mission_id=source, seq=from_seq).first()
        if source_entry is None:
            if not JournalEntry.objects.filter(mission_id=source).exists():
                raise NotFound("No journal entries for this mission.", details={"mission_id": str(source)})
            raise ValidationFailed(
                "Fork from a sequence number of one of the mission's own entries.",
                code="invalid_fork_point",
                details={"from_seq": [f"#{from_seq} is not an entry of mission {source}."]},
            )
        state = replay_mission(mission_id=source, up_to_seq=from_seq)
        fork_id = uuid.uuid4()
        new_id = new_mission_id or uuid.uuid4()
        if (
            MissionFork.objects.filter(new_mission_id=new_id).exists()
            or JournalEntry.objects.filter(mission_id=new_id).exists()
        ):
            raise Conflict("That mission id is already in use.", code="mission_exists")
        entry = journal_append(
            kind="fork.created",
            payload={
                "fork_id": str(fork_id),
                "source_mission_id": str(source),
                "from_seq": from_seq,
                "new_mission_id": str(new_id),
                "reason": reason,
                "state": state.summary(),
            },
            crew_id=state.crew_id,
            mission_id=new_id,
        )
        fork = MissionFork(
            id=fork_id,
            source_mission_id=source,
            from_seq=from_seq,
            new_mission_id=new_id,
            entry_seq=entry.seq,
            created_at=entry.created_at,
            reason=reason,
        )
        fork.full_clean()
        fork.save(force_insert=True)
    return fork
