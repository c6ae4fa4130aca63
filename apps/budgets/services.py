"""Budget enforcement: reserve the worst case before a call, settle to the actual cost after,
release on failure; and the budget CRUD, adjustments, totals rebuild and stale sweep.

How a reservation cannot overspend under concurrency
----------------------------------------------------
Every reservation, in ONE transaction:

1. reads the active budgets matching any of the call's scopes (workspace, crew, mission,
   agent) and computes each one's current window;
2. upserts and row-locks the running-total row of every (budget, window), in budget-id
   order (``INSERT .. ON CONFLICT DO UPDATE`` locks each row it touches, in VALUES order).
   Every writer locks in that same order, so two calls never deadlock, and a second call on
   an overlapping budget waits until the first commits and then sees its reservation;
3. checks ``spent + reserved + worst_case <= limit * block% / 100`` for every budget;
4. writes the ledger row, adds the reservation to every total, and journals - or, blocked,
   writes a ``blocked`` ledger row and journals ``budget.exceeded``.

Settlement and release apply their deltas with the same ordered upsert. A reservation is
closed at most once: a partial unique index on the ledger rejects a second settlement or
release of the same reservation.

Running totals are a cache of the ledger, kept in the same transaction;
``budget_totals_rebuild`` recomputes them from the ledger and reports differences.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, transaction

# django-tenants adds schema_name/tenant to the connection; the stubs do not know.
from django.db import connection as _connection
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from apps.audit.chain import key as chain_key
from apps.audit.services import JournalBatch, NewEntry, journal_append_many
from apps.core.combine import Combiner
from apps.core.context import current_actor
from apps.core.db import ASYNC_COMMIT_CTE, durability_barrier, prepared_cursor, run_prepared
from apps.core.errors import Conflict, GovernanceUnavailable, ValidationFailed
from apps.core.money import format_usd

from .errors import BudgetExceeded
from .models import AlertLevel, Budget, Mode, Scope, Window
from .windows import window_for, window_from_key

connection: Any = _connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCOPE_RANK: dict[str, int] = {"workspace": 1, "crew": 2, "mission": 3, "agent": 4}


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scopes:
    """The scope chain of one call: its workspace (implicit: the active schema) and the crew,
    mission and agent it runs for."""

    crew_id: uuid.UUID | None = None
    mission_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Pricing:
    """The model and the price version a ledger entry was charged at (micro-USD per MTok)."""

    model: str = ""
    price_id: int | None = None
    price_version: int | None = None
    input_per_mtok: int | None = None
    output_per_mtok: int | None = None
    cache_read_per_mtok: int | None = None
    cache_write_per_mtok: int | None = None


@dataclass(frozen=True)
class Tokens:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class BudgetLine:
    """One applicable budget in the window a reservation counts against."""

    budget_id: int
    name: str
    scope: str
    scope_id: str | None
    window: str
    mode: str
    limit_microusd: int
    warn_percent: int | None
    block_percent: int
    window_key: str
    window_start: datetime | None
    window_end: datetime | None

    @property
    def block_at(self) -> int:
        return self.limit_microusd * self.block_percent // 100

    @property
    def warn_at(self) -> int | None:
        return None if self.warn_percent is None else self.limit_microusd * self.warn_percent // 100


@dataclass(frozen=True)
class BudgetState:
    """A budget window as the reservation saw it, under its row lock."""

    line: BudgetLine
    spent_microusd: int
    reserved_microusd: int

    @property
    def used_microusd(self) -> int:
        return self.spent_microusd + self.reserved_microusd

    @property
    def past_warning(self) -> bool:
        warn_at = self.line.warn_at
        return warn_at is not None and self.used_microusd >= warn_at

    @property
    def percent_used(self) -> int:
        return self.used_microusd * 100 // self.line.limit_microusd


@dataclass(frozen=True)
class Charge:
    """What a reservation asks for. ``journal`` entries are written in the same transaction."""

    amount_microusd: int
    pricing: Pricing = field(default_factory=Pricing)
    input_tokens: int = 0
    max_tokens: int = 0
    journal: Sequence[NewEntry] = ()


ChargeFor = Callable[[Sequence[BudgetState]], Charge]


@dataclass(frozen=True)
class Companion:
    """One statement of the caller's, run inside the budget write statement: the same round
    trip and transaction (the gateway writes its call record this way). ``sql`` is a single
    INSERT/UPDATE ... RETURNING with ``%s`` placeholders and schema-qualified table names;
    the outcome reports how many rows it returned."""

    sql: str
    params: Sequence[Any] = ()


# (reservation id or None when blocked, the error when blocked, the charge) -> statement
CompanionFor = Callable[[uuid.UUID | None, "BudgetExceeded | None", Charge], Companion]


@dataclass(frozen=True)
class Reservation:
    id: uuid.UUID
    amount_microusd: int
    lines: tuple[BudgetLine, ...]
    scopes: Scopes
    request_id: str
    pricing: Pricing
    ledger_entry_id: int

    @property
    def budget_ids(self) -> list[int]:
        return [line.budget_id for line in self.lines]

    @property
    def window_keys(self) -> list[str]:
        return [line.window_key for line in self.lines]


@dataclass(frozen=True)
class ReserveOutcome:
    """Either a reservation, or the error of a blocked call (already recorded and journaled)."""

    reservation: Reservation | None
    exceeded: BudgetExceeded | None
    states: tuple[BudgetState, ...]
    charge: Charge
    companion_rows: int | None = None


@dataclass(frozen=True)
class Settlement:
    reservation_id: uuid.UUID
    amount_microusd: int
    released_microusd: int
    ledger_entry_id: int
    states: tuple[BudgetState, ...]
    companion_rows: int | None = None


# --- SQL helpers --------------------------------------------------------------------------------

_LEDGER_COLUMNS = (
    "kind",
    "reservation_id",
    "request_id",
    "crew_id",
    "mission_id",
    "agent_id",
    "model",
    "price_id",
    "price_version",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "price_cache_read_per_mtok",
    "price_cache_write_per_mtok",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "amount_microusd",
    "reserved_microusd",
    "requested_microusd",
    "budget_ids",
    "window_keys",
    "blocked_budget_id",
    "actor",
    "note",
)
_LEDGER_PLACEHOLDERS = ", ".join(
    "%s::bigint[]" if c == "budget_ids" else "%s::varchar[]" if c == "window_keys" else "%s" for c in _LEDGER_COLUMNS
)
_LEDGER_VALUES = f"({_LEDGER_PLACEHOLDERS}, now())"
_LEDGER_INTO = "INSERT INTO {s}.budgets_ledgerentry (" + ", ".join(_LEDGER_COLUMNS) + ", created_at) VALUES "  # noqa: S608

# The window of each budget at a given instant, computed in SQL so that finding the budgets,
# creating missing totals rows and locking them is one statement. ``windows.window_for`` is
# the same computation in Python (a test checks that they agree).
_WINDOW_KEY_SQL = """CASE b."window"
    WHEN 'hour' THEN 'hour:' || to_char(%(ts)s::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')
    WHEN 'day' THEN 'day:' || to_char(%(ts)s::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    WHEN 'week' THEN 'week:' || to_char(date_trunc('week', %(ts)s::timestamptz AT TIME ZONE 'UTC'), 'YYYY-MM-DD')
    WHEN 'month' THEN 'month:' || to_char(%(ts)s::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM')
    ELSE 'mission:' || coalesce(%(mission)s::uuid::text, 'none') END"""
_WINDOW_START_SQL = """CASE WHEN b."window" = 'mission' THEN NULL
    ELSE date_trunc(b."window", %(ts)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END"""
_WINDOW_END_SQL = """CASE WHEN b."window" = 'mission' THEN NULL
    ELSE (date_trunc(b."window", %(ts)s::timestamptz AT TIME ZONE 'UTC') + ('1 ' || b."window")::interval)
        AT TIME ZONE 'UTC' END"""

# Find the active budgets of the call's scopes, upsert their current window's totals row and
# lock it (ON CONFLICT DO UPDATE takes the row lock), in (budget, window) order; return the
# budget with its totals. ``{extra}`` adds windows of a reservation being replaced.
_LOCK_SQL = f"""
WITH b AS (
    SELECT b.id, b.name, b.scope, b.scope_id, b."window", b.mode, b.limit_microusd, b.warn_percent,
           b.block_percent, {_WINDOW_KEY_SQL} AS window_key, {_WINDOW_START_SQL} AS window_start,
           {_WINDOW_END_SQL} AS window_end
    FROM {{s}}.budgets_budget b
    WHERE b.is_active AND (
        b.scope = 'workspace'
        OR (b.scope = 'crew' AND b.scope_id = %(crew)s::uuid)
        OR (b.scope = 'mission' AND b.scope_id = %(mission)s::uuid)
        OR (b.scope = 'agent' AND b.scope_id = %(agent)s::uuid)
    )
), want AS (
    SELECT id AS budget_id, window_key, window_start, window_end FROM b{{extra}}
), up AS (
    INSERT INTO {{s}}.budgets_budgettotal AS tot
        (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at)
    SELECT budget_id, window_key, window_start, window_end, 0, 0, now() FROM want ORDER BY budget_id, window_key
    ON CONFLICT (budget_id, window_key) DO UPDATE SET updated_at = EXCLUDED.updated_at
    RETURNING tot.budget_id, tot.window_key, tot.window_start, tot.window_end, tot.reserved_microusd,
              tot.spent_microusd
)
SELECT up.budget_id, up.window_key, up.window_start, up.window_end, up.reserved_microusd, up.spent_microusd,
       b.id IS NOT NULL, b.name, b.scope, b.scope_id, b."window", b.mode, b.limit_microusd, b.warn_percent,
       b.block_percent
FROM up LEFT JOIN b ON b.id = up.budget_id AND b.window_key = up.window_key
ORDER BY up.budget_id, up.window_key
"""  # noqa: S608

# Adds (reserved, spent) deltas to the totals, locking rows in (budget, window) order. The
# deltas come as six parallel arrays, so the statement text (and its prepared plan) is the
# same whatever the number of budgets, and psycopg can cache its parsing (<= 50 parameters).
_TOTALS_CTE = (
    "t AS (INSERT INTO {s}.budgets_budgettotal AS tot (budget_id, window_key, window_start, window_end, "
    "reserved_microusd, spent_microusd, updated_at) "
    "SELECT d.b, d.k, d.ws, d.we, d.r, d.sp, now() "
    "FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::bigint[]) "
    "AS d(b, k, ws, we, r, sp) ORDER BY d.b, d.k "
    "ON CONFLICT (budget_id, window_key) DO UPDATE SET "
    "reserved_microusd = tot.reserved_microusd + EXCLUDED.reserved_microusd, "
    "spent_microusd = tot.spent_microusd + EXCLUDED.spent_microusd, "
    "updated_at = EXCLUDED.updated_at "
    "RETURNING tot.budget_id, tot.window_key, tot.reserved_microusd, tot.spent_microusd)"
)


def _schema() -> str:
    schema = getattr(connection, "schema_name", None)
    if not schema or schema == get_public_schema_name():
        raise GovernanceUnavailable(
            "Budgets are per workspace: activate a workspace schema first.", code="budget_unavailable"
        )
    return str(connection.ops.quote_name(schema))


def _ledger_params(
    *,
    kind: str,
    reservation_id: uuid.UUID | None,
    request_id: str,
    scopes: Scopes,
    pricing: Pricing,
    tokens: Tokens = Tokens(),
    amount: int = 0,
    reserved: int = 0,
    requested: int = 0,
    lines: Sequence[BudgetLine] = (),
    blocked_budget_id: int | None = None,
    note: str = "",
) -> list[Any]:
    return [
        kind,
        reservation_id,
        request_id[:64],
        scopes.crew_id,
        scopes.mission_id,
        scopes.agent_id,
        pricing.model,
        pricing.price_id,
        pricing.price_version,
        pricing.input_per_mtok,
        pricing.output_per_mtok,
        pricing.cache_read_per_mtok,
        pricing.cache_write_per_mtok,
        tokens.input,
        tokens.output,
        tokens.cache_read,
        tokens.cache_write,
        amount,
        reserved,
        requested,
        [line.budget_id for line in lines],
        [line.window_key for line in lines],
        blocked_budget_id,
        current_actor().label[:200],
        note,
    ]


@dataclass(frozen=True)
class _Locked:
    line: BudgetLine
    reserved_microusd: int
    spent_microusd: int
    current: bool  # False: only a window of the reservation being replaced


def _lock_windows(cursor: Any, scopes: Scopes, at: datetime, extra: Sequence[BudgetLine] = ()) -> list[_Locked]:
    params: dict[str, Any] = {"ts": at, "crew": scopes.crew_id, "mission": scopes.mission_id, "agent": scopes.agent_id}
    extra_sql = ""
    if extra:
        rows = []
        for i, line in enumerate(extra):
            rows.append(f"(%(xb{i})s::bigint, %(xk{i})s::varchar, %(xs{i})s::timestamptz, %(xe{i})s::timestamptz)")
            params.update({f"xb{i}": line.budget_id, f"xk{i}": line.window_key, f"xs{i}": line.window_start,
                           f"xe{i}": line.window_end})  # fmt: skip
        # Only placeholders are joined in; every value is a bound parameter.
        extra_sql = " UNION SELECT * FROM (VALUES " + ", ".join(rows) + ") AS r(budget_id, window_key, ws, we)"  # noqa: S608
    sql = _LOCK_SQL.replace("{extra}", extra_sql).replace("{s}", _schema())
    cursor.execute(sql, params)
    extra_by_key = {(line.budget_id, line.window_key): line for line in extra}
    locked = []
    for (bid, key, start, end, reserved, spent, current, name, scope, scope_id, window, mode, limit, warn,
         block) in cursor.fetchall():  # fmt: skip
        if current:
            line = BudgetLine(
                budget_id=int(bid),
                name=name,
                scope=scope,
                scope_id=str(scope_id) if scope_id else None,
                window=window,
                mode=mode,
                limit_microusd=int(limit),
                warn_percent=warn,
                block_percent=int(block),
                window_key=key,
                window_start=start,
                window_end=end,
            )
        else:
            line = extra_by_key[(int(bid), key)]
        locked.append(
            _Locked(line=line, reserved_microusd=int(reserved), spent_microusd=int(spent), current=bool(current))
        )
    return locked


def _write(
    cursor: Any,
    ledger_rows: Sequence[list[Any]],
    deltas: Mapping[tuple[int, str], tuple[BudgetLine, int, int]],
    *,
    durable: bool,
    companion: Companion | None = None,
) -> tuple[int, dict[tuple[int, str], tuple[int, int]], int | None]:
    """Insert ledger rows and add (reserved, spent) deltas to the totals, in one statement.
    Totals rows are upserted in (budget, window) order, so this also takes their locks in the
    global order. Returns the first ledger row's id and the new totals."""
    schema = _schema()
    params: list[Any] = []
    ctes = [] if durable else [ASYNC_COMMIT_CTE]
    for index, row in enumerate(ledger_rows):
        ctes.append(f"e{index} AS ({_LEDGER_INTO.format(s=schema)}{_LEDGER_VALUES} RETURNING id)")
        params.extend(row)
    ordered = sorted(deltas.items())
    if ordered:
        columns: list[list[Any]] = [[], [], [], [], [], []]
        for (budget_id, window_key), (line, reserved, spent) in ordered:
            for column, value in zip(
                columns, (budget_id, window_key, line.window_start, line.window_end, reserved, spent), strict=True
            ):
                column.append(value)
        params.extend(columns)
        ctes.append(_TOTALS_CTE.format(s=schema))
        main = "SELECT e0.id, t.budget_id, t.window_key, t.reserved_microusd, t.spent_microusd"
        source = " FROM e0 LEFT JOIN t ON true"
    else:
        main = "SELECT e0.id, NULL::bigint, NULL::varchar, NULL::bigint, NULL::bigint"
        source = " FROM e0"
    if companion is not None:
        ctes.append(f"c AS ({companion.sql})")
        params.extend(companion.params)
        main += ", (SELECT count(*) FROM c)"
    else:
        main += ", NULL::bigint"
    main += source
    if not durable:
        # This transaction does not wait for its WAL flush (see durability_barrier).
        main += " CROSS JOIN sc"
    with connection.wrap_database_errors:  # Django's exception classes, for the callers' except clauses
        cursor.execute("WITH " + ", ".join(ctes) + " " + main, params)
        rows = cursor.fetchall()
    totals = {(int(r[1]), str(r[2])): (int(r[3]), int(r[4])) for r in rows if r[1] is not None}
    companion_rows = None if rows[0][5] is None else int(rows[0][5])
    return int(rows[0][0]), totals, companion_rows


def durable_reservations() -> bool:
    return bool(getattr(settings, "BUDGETS_DURABLE_RESERVATIONS", True))


def durable_settlements() -> bool:
    return bool(getattr(settings, "BUDGETS_DURABLE_SETTLEMENTS", False))


_RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retrying(func: Callable[[], T], attempts: int = 3) -> T:
    """Run ``func`` (one transaction); retry on deadlock/serialization failure when we own the
    transaction. Inside a caller's transaction the error propagates (it is doomed anyway)."""
    if connection.in_atomic_block:
        return func()
    for attempt in range(attempts):
        try:
            return func()
        except OperationalError as exc:
            sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
            if sqlstate not in _RETRY_SQLSTATES or attempt == attempts - 1:
                raise
            logger.warning("budget transaction retried after %s", sqlstate)
    raise AssertionError("unreachable")


def _uuid_or_none(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


# --- the one-statement path -------------------------------------------------------------------
# A reservation or close that we own the transaction of is one statement: the schema's
# budgets_reserve / budgets_close function (migration budgets/0004) locks, checks, writes the
# ledger and the totals, and journals, with the caller's companion statement alongside. The
# shared rows (workspace and crew windows, the journal head) are then locked for the
# server's work only. Anything the function does not decide by itself - budgets that changed
# since this process last saw them, a budget that blocks, a budget past its warning
# threshold when the charge depends on it - makes it raise with nothing written, and the
# general path below (the same rules, decided in Python under the same locks) takes over.

_FAST_STALE, _FAST_BLOCKED, _FAST_WARNED, _FAST_NO_COMPANION = "QDB01", "QDB02", "QDB03", "QDB04"
_FAST_FALLBACK = {_FAST_STALE, _FAST_BLOCKED, _FAST_WARNED}

_RESERVE_CALL = (
    "SELECT * FROM {s}.budgets_reserve(%b, %s, %s, %s::uuid, %s::uuid, %s::uuid, %s::bigint, %s::text[], %s, "
    "%s::jsonb, %b::text[])"
)
_CLOSE_CALL = (
    "SELECT * FROM {s}.budgets_close(%b, %s, %s, %s::bigint[], %s::text[], %s::timestamptz[], %s::timestamptz[], "
    "%s::bigint, %s::bigint, %s::jsonb, %b::text[])"
)

# The budgets that applied to a scope chain when this process last reserved for it, per
# database and schema. Only a hint: the function checks it against the budgets it finds.
_LinesKey = tuple[str, str, uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]
_lines_seen: dict[_LinesKey, tuple[BudgetLine, ...]] = {}
_LINES_SEEN_MAX = 10_000


def _lines_key(scopes: Scopes) -> _LinesKey:
    return (
        str(connection.settings_dict["NAME"]),
        str(connection.schema_name),
        scopes.crew_id,
        scopes.mission_id,
        scopes.agent_id,
    )


def _remember_lines(scopes: Scopes, lines: Sequence[BudgetLine]) -> None:
    if len(_lines_seen) >= _LINES_SEEN_MAX:
        _lines_seen.clear()
    _lines_seen[_lines_key(scopes)] = tuple(lines)


def _in_window(line: BudgetLine, at: datetime, mission_id: uuid.UUID | None) -> BudgetLine:
    if line.window_start is not None and line.window_end is not None and line.window_start <= at < line.window_end:
        return line  # still the window it was seen in (the usual case, without computing it)
    span = window_for(line.window, at, mission_id)
    if span.key == line.window_key:
        return line
    return dataclasses.replace(line, window_key=span.key, window_start=span.start, window_end=span.end)


def _fingerprint(line: BudgetLine) -> str:
    """What the function compares: budget, window and the numbers it enforces."""
    warn = "-" if line.warn_percent is None else line.warn_percent
    return f"{line.budget_id}|{line.window_key}|{line.limit_microusd}|{warn}|{line.block_percent}"


def _ledger_json(params: list[Any]) -> bytes:
    return orjson.dumps(dict(zip(_LEDGER_COLUMNS, params, strict=True)))


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)


# --- several calls in one statement ----------------------------------------------------------
# A process's reservations (and closes) that arrive while one of them is in flight are sent
# together (apps.core.combine): one statement of budgets_reserve_batch / budgets_close_batch
# (migration budgets/0006) does for all of them what the single function does for one, so
# the rows all of a workspace's calls share are locked once per batch, and the batch has one
# commit and one durability barrier. Whatever the batch function would not decide by itself
# for one of its calls (a refusal, a second close) makes it raise with nothing written, and
# each call of the batch is then sent alone.

_SEND_ALONE = "alone"
_CLOSED = "closed"
_BATCH_REFUSED = "QDB05"

_RESERVE_BATCH_CALL = (
    "SELECT * FROM {s}.budgets_reserve_batch(%b, %s, %s::timestamptz[], %s::uuid[], %s::uuid[], %s::uuid[], "
    "%s::bigint[], %s::boolean[], %s::int[], %s::text[], %s::jsonb, %s::int[], %b::text[])"
)
_CLOSE_BATCH_CALL = (
    "SELECT * FROM {s}.budgets_close_batch(%b, %s, %s::timestamptz[], %s::int[], %s::bigint[], %s::text[], "
    "%s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::bigint[], %s::jsonb, %s::int[], %b::text[])"
)

# A row as the single functions return it (ledger id, reserved, spent, journal seqs, previous
# hashes, hashes, companion rows), or a status: a refusal code, _CLOSED or _SEND_ALONE.
_Outcome = tuple[Any, ...] | str


@dataclass(frozen=True)
class _FastCall:
    """One call of the one-statement path: its single statement and parameters (a batch
    statement is built from the parameters of its calls)."""

    schema: str  # quoted
    sql: str
    params: list[Any]
    durable: bool = False


_combiner: Combiner[_FastCall, _Outcome] = Combiner(max_batch=64)


def combiner_stats() -> dict[str, float]:
    """How this process's reservations and closes were combined (for benchmarks)."""
    return _combiner.stats.as_dict()


def _combining() -> bool:
    return bool(getattr(settings, "BUDGETS_COMBINE_CONCURRENT_CALLS", True))


_Alone = Callable[[_FastCall], _Outcome]
_Together = Callable[[Sequence[_FastCall]], list[_Outcome]]


def _run_fast(call: _FastCall, alone: _Alone, together: _Together, *, combine: bool) -> _Outcome:
    """``call``'s row (or status): alone, or in a batch with the same kind of calls (the same
    ``together``) of this process's other threads for the same database, schema and commit mode."""
    if combine and _combining():
        key = (together, str(connection.settings_dict["NAME"]), call.schema, call.params[1], call.durable)
        outcome = _combiner.run(key, call, lambda: alone(call), together)
    else:
        outcome = alone(call)
    return alone(call) if outcome == _SEND_ALONE else outcome


def _reserve_alone(call: _FastCall) -> _Outcome:
    try:
        return run_prepared(call.sql, call.params, durable=call.durable)[0]
    except DatabaseError as exc:
        state = _sqlstate(exc)
        if state in _FAST_FALLBACK or state == _FAST_NO_COMPANION:
            return str(state)
        raise


def _close_alone(call: _FastCall) -> _Outcome:
    try:
        return run_prepared(call.sql, call.params)[0]
    except IntegrityError:
        return _CLOSED


def _together(sql: str, params: list[Any], calls: Sequence[_FastCall]) -> list[_Outcome]:
    """Run a batch statement: one single-function row per call, or _SEND_ALONE for every
    call if the statement failed (then it wrote nothing)."""
    try:
        rows = run_prepared(sql.replace("{s}", calls[0].schema), params)
    except DatabaseError as exc:
        state = _sqlstate(exc)
        if state is None or state.startswith(("08", "57", "58", "XX")):
            raise  # the connection or the server failed: every call of the batch fails (closed)
        if state != _BATCH_REFUSED:
            logger.info("a batch of %d budget calls failed (%s); sending each alone", len(calls), exc)
        return [_SEND_ALONE] * len(calls)
    if len(rows) != len(calls):
        raise GovernanceUnavailable("The budget batch did not answer for every call.", code="budget_unavailable")
    if calls[0].durable:
        # After the statement, not in its round trip: the batch has committed, so if the
        # barrier fails, every call of it fails (nothing may act on it), none is sent again.
        durability_barrier()
    # row: item, ledger id, reserved, spent, journal seqs, previous hashes, hashes
    return [(*row[1:7], None) for row in rows]


def _flat(calls: Sequence[_FastCall], index: int) -> list[Any]:
    return [value for call in calls for value in call.params[index]]


def _ledgers(calls: Sequence[_FastCall], index: int) -> str:
    return "[" + ",".join(call.params[index] for call in calls) + "]"


def _reserve_together(calls: Sequence[_FastCall]) -> list[_Outcome]:
    # The single call's parameters: key, async, now, crew, mission, agent, amount, expected
    # budgets, guard, ledger row, journal documents.
    first = calls[0].params
    column = [[call.params[i] for call in calls] for i in range(len(first))]
    params = [
        first[0],
        first[1],
        *column[2:7],
        column[8],
        [len(expected) for expected in column[7]],
        _flat(calls, 7),
        _ledgers(calls, 9),
        [len(documents) for documents in column[10]],
        _flat(calls, 10),
    ]
    return _together(_RESERVE_BATCH_CALL, params, calls)


def _close_together(calls: Sequence[_FastCall]) -> list[_Outcome]:
    # The single call's parameters: key, async, now, budget ids, window keys, starts, ends,
    # reserved delta, spent delta, ledger row, journal documents.
    first = calls[0].params
    column = [[call.params[i] for call in calls] for i in range(len(first))]
    params = [
        first[0],
        first[1],
        column[2],
        [len(ids) for ids in column[3]],
        *(_flat(calls, i) for i in (3, 4, 5, 6)),
        column[7],
        column[8],
        _ledgers(calls, 9),
        [len(documents) for documents in column[10]],
        _flat(calls, 10),
    ]
    return _together(_CLOSE_BATCH_CALL, params, calls)


def _with_companion(call: str, companion: Companion | None, *, required: bool) -> tuple[str, list[Any]]:
    if companion is None:
        return f"SELECT r.*, NULL::bigint FROM ({call}) AS r", []  # noqa: S608  (our own statement)
    abort = (
        f" CASE WHEN (SELECT count(*) FROM c) = 0 THEN {_schema()}.budgets_abort('{_FAST_NO_COMPANION}', "  # noqa: S608
        "'the companion statement wrote nothing') END"
        if required
        else " NULL::bigint"
    )
    sql = f"WITH r AS MATERIALIZED ({call}), c AS ({companion.sql}) SELECT r.*, (SELECT count(*) FROM c),{abort} FROM r"  # noqa: S608  (our own statements)
    return sql, list(companion.params)


def _fast_reserve(
    scopes: Scopes,
    charge_or_fn: Charge | ChargeFor,
    request_id: str,
    note: str,
    async_commit: bool,
    companion: CompanionFor | None,
    companion_required: bool,
    durable: bool,
) -> ReserveOutcome | None:
    """The reservation in one statement, or None: take the general path. ``durable``: with
    the durability barrier in the same round trip (see run_prepared)."""
    seen = _lines_seen.get(_lines_key(scopes))
    if seen is None:
        return None
    now = timezone.now()
    lines = tuple(_in_window(line, now, scopes.mission_id) for line in seen)
    guard_warning = callable(charge_or_fn)
    if callable(charge_or_fn):
        # The charge depends on the states only through their warning thresholds; the
        # function refuses (and the general path decides) if any budget is past one.
        quiet = tuple(BudgetState(line=line, spent_microusd=0, reserved_microusd=0) for line in lines)
        if any(state.past_warning for state in quiet):
            return None
        charge = charge_or_fn(quiet)
    else:
        charge = charge_or_fn
    if charge.amount_microusd < 0:
        raise ValidationFailed("A reservation cannot be negative.")
    reservation_id = uuid.uuid4()
    ledger = _reservation_ledger_row(reservation_id, request_id, scopes, charge, lines, note)
    reserved_entry = _entry("budget.reserved", _reserved_payload(reservation_id, charge, lines), scopes, request_id)
    batch = JournalBatch.of([*charge.journal, reserved_entry], now=now)
    schema = _schema()
    call = _RESERVE_CALL.replace("{s}", schema)
    sql, extra = _with_companion(
        call,
        companion(reservation_id, None, charge) if companion is not None else None,
        required=companion_required,
    )
    params = [
        chain_key(),
        async_commit,
        now,
        scopes.crew_id,
        scopes.mission_id,
        scopes.agent_id,
        charge.amount_microusd,
        [_fingerprint(line) for line in lines],
        guard_warning,
        _ledger_json(ledger).decode(),
        batch.documents(),
        *extra,
    ]
    row = _run_fast(
        _FastCall(schema, sql, params, durable), _reserve_alone, _reserve_together, combine=companion is None
    )
    if isinstance(row, str):
        if row in _FAST_FALLBACK:
            if row == _FAST_STALE:
                _lines_seen.pop(_lines_key(scopes), None)
            return None
        assert row == _FAST_NO_COMPANION, row
        return ReserveOutcome(reservation=None, exceeded=None, states=(), charge=charge, companion_rows=0)
    ledger_id, reserved, spent, seqs, prev_hashes, hashes, companion_rows = row[:7]
    states = tuple(
        BudgetState(line=line, spent_microusd=int(s), reserved_microusd=int(r))
        for line, r, s in zip(lines, reserved, spent, strict=True)
    )
    batch.publish_written(seqs, prev_hashes, hashes)
    reservation = Reservation(
        id=reservation_id,
        amount_microusd=charge.amount_microusd,
        lines=lines,
        scopes=scopes,
        request_id=request_id,
        pricing=charge.pricing,
        ledger_entry_id=int(ledger_id),
    )
    return ReserveOutcome(
        reservation=reservation,
        exceeded=None,
        states=states,
        charge=charge,
        companion_rows=None if companion is None else int(companion_rows),
    )


def _reservation_ledger_row(
    reservation_id: uuid.UUID,
    request_id: str,
    scopes: Scopes,
    charge: Charge,
    lines: Sequence[BudgetLine],
    note: str,
    *,
    blocked_by: int | None = None,
) -> list[Any]:
    """The reservation row: the worst case held against every line (both reserve paths); with
    ``blocked_by`` (a budget id), the row of the refused reservation, which holds nothing."""
    return _ledger_params(
        kind="reservation" if blocked_by is None else "blocked",
        reservation_id=reservation_id,
        request_id=request_id,
        scopes=scopes,
        pricing=charge.pricing,
        tokens=Tokens(input=charge.input_tokens),
        reserved=charge.amount_microusd if blocked_by is None else 0,
        requested=charge.amount_microusd,
        lines=lines,
        blocked_budget_id=blocked_by,
        note=note,
    )


def _reserved_payload(reservation_id: uuid.UUID, charge: Charge, lines: Sequence[BudgetLine]) -> dict[str, Any]:
    return {
        "reservation_id": str(reservation_id),
        "amount_microusd": charge.amount_microusd,
        "budget_ids": [line.budget_id for line in lines],
        "window_keys": [line.window_key for line in lines],
        "model": charge.pricing.model,
        "price_id": charge.pricing.price_id,
        "price_version": charge.pricing.price_version,
        "input_tokens": charge.input_tokens,
        "max_tokens": charge.max_tokens,
    }


# --- reserve ------------------------------------------------------------------------------------


def budget_try_reserve(
    *,
    scopes: Scopes,
    charge: Charge | ChargeFor,
    request_id: str = "",
    replaces: Reservation | None = None,
    note: str = "",
    async_commit: bool = False,
    companion: CompanionFor | None = None,
    companion_required: bool = False,
    durable: bool = False,
) -> ReserveOutcome:
    """Reserve a call's worst case against every applicable budget, in one transaction.

    ``charge`` is the amount, or a function of the locked budget states returning it (the
    gateway uses this to downgrade a model's tier when a budget is past its warning
    threshold: the decision is taken under the same locks as the reservation). ``replaces``
    releases an earlier reservation of the same call in the same transaction (a fallback to
    another model). A blocked call is recorded and journaled and comes back as
    ``outcome.exceeded``; nothing is raised, so the record commits.

    ``async_commit`` (only for a transaction the caller owns and commits right after): do
    not wait for the WAL flush at commit; wait for it before acting on the reservation
    instead: with ``durable``, this returns once the outcome is on disk (on the fast path the
    barrier rides in the reservation's round trip), as ``budget_reserve`` and the gateway ask;
    otherwise call ``durability_barrier()``. ``companion`` adds one
    statement of the caller's to the write (see ``Companion``); with ``companion_required``
    (only for a transaction we own), a companion that writes no row undoes everything and
    the outcome has neither a reservation nor an error, and ``companion_rows == 0``.

    Outside a caller's transaction this is usually one statement (see ``_fast_reserve``).
    """
    durable = durable and async_commit and not connection.in_atomic_block
    if not connection.in_atomic_block and replaces is None:
        outcome = _fast_reserve(scopes, charge, request_id, note, async_commit, companion, companion_required, durable)
        if outcome is not None:
            return outcome
    try:
        outcome = _retrying(
            lambda: _try_reserve(
                scopes, charge, request_id, replaces, note, async_commit, companion, companion_required
            )
        )
    except _CompanionWroteNothing as nothing:
        return ReserveOutcome(reservation=None, exceeded=None, states=(), charge=nothing.charge, companion_rows=0)
    if durable:
        durability_barrier()
    return outcome


class _CompanionWroteNothing(Exception):
    def __init__(self, charge: Charge) -> None:
        super().__init__("the companion statement wrote nothing")
        self.charge = charge


def budget_reserve(*, scopes: Scopes, charge: Charge | ChargeFor, request_id: str = "", note: str = "") -> Reservation:
    """``budget_try_reserve`` that raises ``BudgetExceeded`` (after the blocked row committed).
    In a transaction of its own, the reservation is on disk when this returns."""
    own = not connection.in_atomic_block
    outcome = budget_try_reserve(
        scopes=scopes,
        charge=charge,
        request_id=request_id,
        note=note,
        async_commit=own,
        durable=own and durable_reservations(),
    )
    if outcome.exceeded is not None:
        raise outcome.exceeded
    assert outcome.reservation is not None
    return outcome.reservation


def _try_reserve(
    scopes: Scopes,
    charge_or_fn: Charge | ChargeFor,
    request_id: str,
    replaces: Reservation | None,
    note: str,
    async_commit: bool,
    companion: CompanionFor | None,
    companion_required: bool = False,
) -> ReserveOutcome:
    now = timezone.now()
    with transaction.atomic(savepoint=False), prepared_cursor() as cursor:
        # One statement: find the budgets, create missing window rows, lock them in order.
        locked = _lock_windows(cursor, scopes, now, replaces.lines if replaces is not None else ())
        freed = {(line.budget_id, line.window_key) for line in replaces.lines} if replaces is not None else set()
        lines = [item.line for item in locked if item.current]
        if replaces is None:
            _remember_lines(scopes, lines)
        states = tuple(
            BudgetState(
                line=item.line,
                spent_microusd=item.spent_microusd,
                reserved_microusd=item.reserved_microusd
                - (
                    replaces.amount_microusd
                    if replaces is not None and (item.line.budget_id, item.line.window_key) in freed
                    else 0
                ),
            )
            for item in locked
            if item.current
        )
        charge = charge_or_fn(states) if callable(charge_or_fn) else charge_or_fn
        if charge.amount_microusd < 0:
            raise ValidationFailed("A reservation cannot be negative.")
        blocking = [s for s in states if s.used_microusd + charge.amount_microusd > s.line.block_at]
        reservation_id = uuid.uuid4()
        if blocking:
            exceeded, companion_rows = _block(
                cursor, scopes, charge, request_id, reservation_id, lines, blocking, note, async_commit, companion
            )
            if companion_required and companion_rows == 0:
                raise _CompanionWroteNothing(charge)
            return ReserveOutcome(
                reservation=None, exceeded=exceeded, states=states, charge=charge, companion_rows=companion_rows
            )

        ledger_rows = [_reservation_ledger_row(reservation_id, request_id, scopes, charge, lines, note)]
        deltas: dict[tuple[int, str], tuple[BudgetLine, int, int]] = {}
        if replaces is not None:
            ledger_rows.append(
                _ledger_params(
                    kind="release",
                    reservation_id=replaces.id,
                    request_id=request_id,
                    scopes=scopes,
                    pricing=replaces.pricing,
                    reserved=-replaces.amount_microusd,
                    lines=replaces.lines,
                    note="replaced by another reservation of the same call",
                )
            )
            for line in replaces.lines:
                deltas[(line.budget_id, line.window_key)] = (line, -replaces.amount_microusd, 0)
        for line in lines:
            key = (line.budget_id, line.window_key)
            deltas[key] = (line, deltas.get(key, (line, 0, 0))[1] + charge.amount_microusd, 0)
        entry_id, _totals, companion_rows = _write(
            cursor,
            ledger_rows,
            deltas,
            durable=not async_commit,
            companion=companion(reservation_id, None, charge) if companion is not None else None,
        )
        if companion_required and companion_rows == 0:
            raise _CompanionWroteNothing(charge)
        payload = _reserved_payload(reservation_id, charge, lines)
        if replaces is not None:
            payload["replaced_reservation_id"] = str(replaces.id)
        journal_append_many(entries=[*charge.journal, _entry("budget.reserved", payload, scopes, request_id)])
        reservation = Reservation(
            id=reservation_id,
            amount_microusd=charge.amount_microusd,
            lines=tuple(lines),
            scopes=scopes,
            request_id=request_id,
            pricing=charge.pricing,
            ledger_entry_id=entry_id,
        )
        return ReserveOutcome(
            reservation=reservation, exceeded=None, states=states, charge=charge, companion_rows=companion_rows
        )


def _entry(
    kind: str, payload: Mapping[str, Any], scopes: Scopes, request_id: str, severity: str | None = None
) -> NewEntry:
    return NewEntry(
        kind=kind,
        payload=payload,
        severity=severity,
        crew_id=scopes.crew_id,
        mission_id=scopes.mission_id,
        agent_id=scopes.agent_id,
        request_id=request_id or None,
    )


def _block(
    cursor: Any,
    scopes: Scopes,
    charge: Charge,
    request_id: str,
    reservation_id: uuid.UUID,
    lines: Sequence[BudgetLine],
    blocking: Sequence[BudgetState],
    note: str,
    async_commit: bool,
    companion: CompanionFor | None,
) -> tuple[BudgetExceeded, int | None]:
    # Name the narrowest scope that blocks; among equals, the one with the least headroom.
    worst = max(
        blocking,
        key=lambda s: (_SCOPE_RANK.get(s.line.scope, 0), s.used_microusd + charge.amount_microusd - s.line.block_at),
    )
    line = worst.line
    exceeded = BudgetExceeded(
        scope=line.scope,
        scope_id=line.scope_id,
        budget_id=line.budget_id,
        budget_name=line.name,
        window_key=line.window_key,
        limit_microusd=line.limit_microusd,
        spent_microusd=worst.spent_microusd,
        reserved_microusd=worst.reserved_microusd,
        requested_microusd=charge.amount_microusd,
        blocking=[
            {
                "budget_id": s.line.budget_id,
                "scope": s.line.scope,
                "scope_id": s.line.scope_id,
                "window_key": s.line.window_key,
                "limit_microusd": s.line.limit_microusd,
                "used_microusd": s.used_microusd,
            }
            for s in blocking
        ],
    )
    row = _reservation_ledger_row(
        reservation_id, request_id, scopes, charge, lines, note or exceeded.message[:500], blocked_by=line.budget_id
    )
    _entry_id, _totals, companion_rows = _write(
        cursor,
        [row],
        {},
        durable=not async_commit,
        companion=companion(None, exceeded, charge) if companion is not None else None,
    )
    entries = list(charge.journal)
    entries.append(
        _entry(
            "budget.exceeded",
            {
                "budget_id": line.budget_id,
                "budget_name": line.name,
                "scope": line.scope,
                "scope_id": line.scope_id,
                "window_key": line.window_key,
                "limit_microusd": line.limit_microusd,
                "spent_microusd": worst.spent_microusd,
                "reserved_microusd": worst.reserved_microusd,
                "requested_microusd": charge.amount_microusd,
                "model": charge.pricing.model,
                "price_id": charge.pricing.price_id,
                "price_version": charge.pricing.price_version,
                "blocking_budget_ids": [s.line.budget_id for s in blocking],
            },
            scopes,
            request_id,
        )
    )
    journal_append_many(entries=entries)
    for state in blocking:
        _alert(cursor, state, AlertLevel.EXCEEDED, blocked=True)
    return exceeded, companion_rows


# --- settle / release ---------------------------------------------------------------------------


def budget_settle(
    *,
    reservation: Reservation,
    amount_microusd: int,
    tokens: Tokens,
    pricing: Pricing | None = None,
    journal: Sequence[NewEntry] = (),
    note: str = "",
    async_commit: bool | None = None,
    companion: Companion | None = None,
) -> Settlement:
    """Replace the reservation by the actual cost, in every budget window it was held in.

    By default (``BUDGETS_DURABLE_SETTLEMENTS`` off) a settlement in its own transaction
    does not wait for its WAL flush: if a database crash lost it, the reservation would stay
    open and the stale sweep would settle it at its worst case, which never under-counts.
    """
    if amount_microusd < 0:
        raise ValidationFailed("A settlement cannot be negative.")
    asynchronous = _async_close(async_commit)
    if not connection.in_atomic_block:
        return _fast_close(
            reservation, "settlement", amount_microusd, tokens, pricing, journal, note, "", asynchronous, companion
        )
    return _retrying(
        lambda: _close(
            reservation, "settlement", amount_microusd, tokens, pricing, journal, note, "", asynchronous, companion
        )
    )


def budget_release(
    *,
    reservation: Reservation,
    reason: str,
    journal: Sequence[NewEntry] = (),
    note: str = "",
    async_commit: bool | None = None,
    companion: Companion | None = None,
) -> Settlement:
    """Give the reservation back without spend (the call failed or was not made)."""
    asynchronous = _async_close(async_commit)
    if not connection.in_atomic_block:
        return _fast_close(reservation, "release", 0, Tokens(), None, journal, note, reason, asynchronous, companion)
    return _retrying(
        lambda: _close(reservation, "release", 0, Tokens(), None, journal, note, reason, asynchronous, companion)
    )


def _async_close(async_commit: bool | None) -> bool:
    if async_commit is not None:
        return async_commit
    # Only a transaction of our own: never change the commit of a caller's transaction.
    return not connection.in_atomic_block and not durable_settlements()


def _close(
    reservation: Reservation,
    kind: str,
    amount: int,
    tokens: Tokens,
    pricing: Pricing | None,
    journal: Sequence[NewEntry],
    note: str,
    reason: str,
    async_commit: bool = False,
    companion: Companion | None = None,
) -> Settlement:
    pricing = pricing or reservation.pricing
    with transaction.atomic(savepoint=False), prepared_cursor() as cursor:
        row = _close_ledger_row(reservation, kind, amount, tokens, pricing, note or reason)
        deltas = {
            (line.budget_id, line.window_key): (line, -reservation.amount_microusd, amount)
            for line in reservation.lines
        }
        try:
            entry_id, totals, companion_rows = _write(
                cursor, [row], deltas, durable=not async_commit, companion=companion
            )
        except IntegrityError as exc:
            raise Conflict(
                "This reservation was already settled or released.",
                code="reservation_closed",
                details={"reservation_id": str(reservation.id)},
            ) from exc
        states = tuple(
            BudgetState(
                line=line,
                reserved_microusd=totals[(line.budget_id, line.window_key)][0],
                spent_microusd=totals[(line.budget_id, line.window_key)][1],
            )
            for line in reservation.lines
        )
        entries = _close_entries(reservation, kind, amount, tokens, pricing, journal, reason)
        journal_append_many(entries=entries)
        if amount:
            for state in states:
                _check_thresholds(cursor, state)
        return Settlement(
            reservation_id=reservation.id,
            amount_microusd=amount,
            released_microusd=reservation.amount_microusd,
            ledger_entry_id=entry_id,
            states=states,
            companion_rows=companion_rows,
        )


def _close_ledger_row(
    reservation: Reservation, kind: str, amount: int, tokens: Tokens, pricing: Pricing, note: str
) -> list[Any]:
    """The settlement or release row: the actual spend, and the reservation given back."""
    return _ledger_params(
        kind=kind,
        reservation_id=reservation.id,
        request_id=reservation.request_id,
        scopes=reservation.scopes,
        pricing=pricing,
        tokens=tokens,
        amount=amount,
        reserved=-reservation.amount_microusd,
        lines=reservation.lines,
        note=note,
    )


def _close_entries(
    reservation: Reservation,
    kind: str,
    amount: int,
    tokens: Tokens,
    pricing: Pricing,
    journal: Sequence[NewEntry],
    reason: str,
) -> list[NewEntry]:
    scopes = reservation.scopes
    entries = list(journal)
    if kind == "settlement":
        payload: dict[str, Any] = {
            "reservation_id": str(reservation.id),
            "amount_microusd": amount,
            "released_microusd": max(0, reservation.amount_microusd - amount),
            "model": pricing.model,
            "price_id": pricing.price_id,
            "price_version": pricing.price_version,
            "input_tokens": tokens.input,
            "output_tokens": tokens.output,
            "cache_read_tokens": tokens.cache_read,
            "cache_write_tokens": tokens.cache_write,
        }
        if amount > reservation.amount_microusd:
            # The provider billed more than the worst case we estimated; the ledger keeps
            # the truth and the next reservation sees it.
            payload["overrun_microusd"] = amount - reservation.amount_microusd
        entries.append(_entry("budget.settled", payload, scopes, reservation.request_id))
    else:
        entries.append(
            _entry(
                "budget.released",
                {
                    "reservation_id": str(reservation.id),
                    "released_microusd": reservation.amount_microusd,
                    "reason": reason[:500],
                    "model": pricing.model,
                },
                scopes,
                reservation.request_id,
            )
        )
    return entries


def _fast_close(
    reservation: Reservation,
    kind: str,
    amount: int,
    tokens: Tokens,
    pricing: Pricing | None,
    journal: Sequence[NewEntry],
    note: str,
    reason: str,
    async_commit: bool,
    companion: Companion | None,
) -> Settlement:
    """A settlement or release in one statement (see budgets_close, migration budgets/0004)."""
    pricing = pricing or reservation.pricing
    lines = sorted(reservation.lines, key=lambda line: (line.budget_id, line.window_key))
    ledger = _close_ledger_row(reservation, kind, amount, tokens, pricing, note or reason)
    batch = JournalBatch.of(_close_entries(reservation, kind, amount, tokens, pricing, journal, reason))
    schema = _schema()
    sql, extra = _with_companion(_CLOSE_CALL.replace("{s}", schema), companion, required=False)
    params = [
        chain_key(),
        async_commit,
        batch.now,
        [line.budget_id for line in lines],
        [line.window_key for line in lines],
        [line.window_start for line in lines],
        [line.window_end for line in lines],
        -reservation.amount_microusd,
        amount,
        _ledger_json(ledger).decode(),
        batch.documents(),
        *extra,
    ]
    row = _run_fast(_FastCall(schema, sql, params), _close_alone, _close_together, combine=companion is None)
    if isinstance(row, str):
        assert row == _CLOSED, row
        raise Conflict(
            "This reservation was already settled or released.",
            code="reservation_closed",
            details={"reservation_id": str(reservation.id)},
        )
    ledger_id, reserved, spent, seqs, prev_hashes, hashes, companion_rows = row[:7]
    batch.publish_written(seqs, prev_hashes, hashes)
    states = tuple(
        BudgetState(line=line, reserved_microusd=int(r), spent_microusd=int(s))
        for line, r, s in zip(lines, reserved, spent, strict=True)
    )
    if amount and any(_alert_due(state) for state in states):
        with transaction.atomic(), prepared_cursor() as cursor:
            for state in states:
                _check_thresholds(cursor, state)
    return Settlement(
        reservation_id=reservation.id,
        amount_microusd=amount,
        released_microusd=reservation.amount_microusd,
        ledger_entry_id=int(ledger_id),
        states=states,
        companion_rows=None if companion is None else int(companion_rows),
    )


def _alert_due(state: BudgetState) -> bool:
    line = state.line
    warn_at = line.warn_at
    return state.spent_microusd >= line.limit_microusd or (warn_at is not None and state.spent_microusd >= warn_at)


# --- thresholds and notifications ---------------------------------------------------------------

# (schema, budget, window, level) already alerted: skips the INSERT on every later settlement
# of the window. Only an optimisation: the unique row in budgets_budgetalert is the truth.
_alerted: set[tuple[str, int, str, str]] = set()
_alerted_lock = threading.Lock()


def _check_thresholds(cursor: Any, state: BudgetState) -> None:
    line = state.line
    if state.spent_microusd >= line.limit_microusd:
        _alert(cursor, state, AlertLevel.EXCEEDED)
    warn_at = line.warn_at
    if warn_at is not None and state.spent_microusd >= warn_at:
        _alert(cursor, state, AlertLevel.WARNING)


def _alert(cursor: Any, state: BudgetState, level: str, *, blocked: bool = False) -> None:
    line = state.line
    memo = (str(connection.schema_name), line.budget_id, line.window_key, level)
    if memo in _alerted:
        return
    cursor.execute(
        f"INSERT INTO {_schema()}.budgets_budgetalert "  # noqa: S608  (the quoted active schema)
        "(budget_id, window_key, level, spent_microusd, reserved_microusd, created_at) "
        "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING RETURNING id",
        [line.budget_id, line.window_key, level, state.spent_microusd, state.reserved_microusd],
    )
    inserted = cursor.fetchone() is not None
    transaction.on_commit(lambda: _remember(memo))
    if not inserted:
        return
    percent = state.spent_microusd * 100 // line.limit_microusd
    journal_append_many(
        entries=[
            NewEntry(
                kind="budget.warning",
                payload={
                    "budget_id": line.budget_id,
                    "budget_name": line.name,
                    "scope": line.scope,
                    "scope_id": line.scope_id,
                    "window_key": line.window_key,
                    "level": level,
                    "percent": percent,
                    "spent_microusd": state.spent_microusd,
                    "limit_microusd": line.limit_microusd,
                },
                severity="warning" if level == AlertLevel.WARNING else "critical" if blocked else "warning",
            )
        ]
    )
    _notify(line, state, level, blocked=blocked)


def _remember(memo: tuple[str, int, str, str]) -> None:
    with _alerted_lock:
        if len(_alerted) > 100_000:
            _alerted.clear()
        _alerted.add(memo)


def _notify(line: BudgetLine, state: BudgetState, level: str, *, blocked: bool) -> None:
    from apps.notifications.services import notify

    workspace = getattr(connection, "tenant", None)
    if workspace is None or not getattr(workspace, "pk", None):
        logger.warning("budget alert for %s without an active workspace; not notified", line.budget_id)
        return
    who = f"{line.scope} {line.scope_id}" if line.scope_id else "workspace"
    spent = format_usd(state.spent_microusd)
    limit = format_usd(line.limit_microusd)
    if level == AlertLevel.WARNING:
        subject = f"Budget '{line.name}' passed {line.warn_percent}% ({spent} of {limit})"
    elif blocked:
        subject = f"Budget '{line.name}' blocked a model call ({spent} spent of {limit})"
    else:
        subject = f"Budget '{line.name}' reached its limit ({spent} of {limit})"
    body = (
        f"{subject}.\nScope: {who}. Window: {line.window_key}. Mode: {line.mode}. "
        f"Held for calls in flight: {format_usd(state.reserved_microusd)}."
    )
    link = f"/w/{workspace.slug}/budgets/"
    notify(
        workspace=workspace,
        roles=["owner", "admin"],
        kind=f"budget.{level}",
        subject=subject,
        body=body,
        link=link,
    )


# --- CRUD ---------------------------------------------------------------------------------------

EDITABLE_FIELDS = ("name", "mode", "limit_microusd", "warn_percent", "block_percent", "is_active", "window")


def _defaults_for(mode: str) -> tuple[int | None, int]:
    if mode == Mode.HARD:
        return None, 100
    if mode == Mode.SOFT:
        return 100, int(settings.BUDGETS_DEFAULT_SOFT_CEILING_PERCENT)
    return int(settings.BUDGETS_DEFAULT_WARN_PERCENT), 100


def _validate_thresholds(budget: Budget) -> None:
    errors: dict[str, list[str]] = {}
    if budget.mode in (Mode.HARD, Mode.TIERED) and budget.block_percent > 100:
        errors["block_percent"] = ["Hard and tiered budgets block at or below 100%; use soft for a ceiling above."]
    if budget.mode == Mode.SOFT and budget.block_percent < 100:
        errors["block_percent"] = ["A soft budget's ceiling is at least 100%."]
    if budget.mode == Mode.TIERED and budget.warn_percent is None:
        errors["warn_percent"] = ["A tiered budget needs a warning threshold."]
    if budget.warn_percent is not None and not 1 <= budget.warn_percent < budget.block_percent:
        errors["warn_percent"] = ["The warning threshold must be between 1 and the block threshold."]
    if budget.window == Window.MISSION and budget.scope == Scope.AGENT:
        pass  # an agent's spend per mission: allowed
    if errors:
        raise ValidationFailed("The budget is not valid.", details=errors)


def budget_validate(*, budget: Budget) -> None:
    """Raise ValidationFailed unless the thresholds suit the mode (used by forms too)."""
    _validate_thresholds(budget)


def _full_clean(budget: Budget) -> None:
    from django.core.exceptions import ValidationError

    try:
        budget.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("The budget is not valid.", details=exc.message_dict) from exc
    _validate_thresholds(budget)


def _as_dict(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "scope": budget.scope,
        "scope_id": str(budget.scope_id) if budget.scope_id else None,
        "window": budget.window,
        "mode": budget.mode,
        "limit_microusd": budget.limit_microusd,
        "warn_percent": budget.warn_percent,
        "block_percent": budget.block_percent,
        "is_active": budget.is_active,
    }


@transaction.atomic
def budget_create(
    *,
    name: str,
    scope: str,
    window: str,
    limit_microusd: int,
    scope_id: uuid.UUID | None = None,
    mode: str = Mode.HARD,
    warn_percent: int | None = None,
    block_percent: int | None = None,
) -> Budget:
    """Create a budget; thresholds not given take the mode's defaults (hard: block 100;
    soft: warn 100, ceiling 120; tiered: warn 80, block 100)."""
    default_warn, default_block = _defaults_for(mode)
    budget = Budget(
        name=name,
        scope=scope,
        scope_id=None if scope == Scope.WORKSPACE else scope_id,
        window=window,
        mode=mode,
        limit_microusd=limit_microusd,
        warn_percent=warn_percent if warn_percent is not None else default_warn,
        block_percent=block_percent if block_percent is not None else default_block,
    )
    if scope != Scope.WORKSPACE and scope_id is None:
        raise ValidationFailed(
            "A crew, mission or agent budget names its scope_id.", details={"scope_id": ["Required."]}
        )
    if scope == Scope.WORKSPACE and scope_id is not None:
        raise ValidationFailed("A workspace budget has no scope_id.", details={"scope_id": ["Must be empty."]})
    _full_clean(budget)
    budget.save()
    journal_append_many(
        entries=[NewEntry(kind="budget.created", payload={"budget_id": budget.pk, "budget": _as_dict(budget)})]
    )
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, **changes: Any) -> Budget:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed(details={name: ["Cannot be changed."] for name in sorted(unknown)})
    # Lock the budget so two editors cannot interleave read-modify-write.
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    before = _as_dict(budget)
    if "mode" in changes and changes["mode"] != budget.mode:
        default_warn, default_block = _defaults_for(changes["mode"])
        changes.setdefault("warn_percent", default_warn)
        changes.setdefault("block_percent", default_block)
    for key, value in changes.items():
        setattr(budget, key, value)
    _full_clean(budget)
    budget.save()
    after = _as_dict(budget)
    diff = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if diff:
        journal_append_many(
            entries=[NewEntry(kind="budget.updated", payload={"budget_id": budget.pk, "changes": diff})]
        )
    return budget


@transaction.atomic
def budget_archive(*, budget: Budget) -> Budget:
    """Budgets are archived, not deleted: ledger entries keep pointing at them."""
    if budget.is_active:
        budget.is_active = False
        budget.save(update_fields=["is_active", "updated_at"])
        journal_append_many(
            entries=[NewEntry(kind="budget.archived", payload={"budget_id": budget.pk, "name": budget.name})]
        )
    return budget


def budget_adjust(*, scopes: Scopes, amount_microusd: int, note: str) -> int:
    """Record a correction (credit < 0, debit > 0) against every applicable budget window now."""
    if not note.strip():
        raise ValidationFailed("Say why.", details={"note": ["Required."]})

    def run() -> int:
        with transaction.atomic(savepoint=False), prepared_cursor() as cursor:
            lines = [item.line for item in _lock_windows(cursor, scopes, timezone.now())]
            row = _ledger_params(
                kind="adjustment",
                reservation_id=None,
                request_id="",
                scopes=scopes,
                pricing=Pricing(),
                amount=amount_microusd,
                lines=lines,
                note=note,
            )
            deltas = {(line.budget_id, line.window_key): (line, 0, amount_microusd) for line in lines}
            entry_id, _totals, _rows = _write(cursor, [row], deltas, durable=True)
            journal_append_many(
                entries=[
                    _entry(
                        "budget.adjusted",
                        {
                            "amount_microusd": amount_microusd,
                            "budget_ids": [line.budget_id for line in lines],
                            "window_keys": [line.window_key for line in lines],
                            "note": note[:500],
                        },
                        scopes,
                        "",
                    )
                ]
            )
            return entry_id

    return _retrying(run)


# --- totals rebuild -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TotalDifference:
    budget_id: int
    window_key: str
    stored_reserved: int | None
    stored_spent: int | None
    ledger_reserved: int
    ledger_spent: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


_LEDGER_SUMS = """
    SELECT a.budget_id, a.window_key, SUM(e.reserved_microusd), SUM(e.amount_microusd)
    FROM budgets_ledgerentry e
    CROSS JOIN LATERAL unnest(e.budget_ids, e.window_keys) AS a(budget_id, window_key)
    GROUP BY a.budget_id, a.window_key
"""


def budget_totals_rebuild(*, apply: bool = False) -> list[TotalDifference]:
    """Recompute every running total from the ledger; report (and with ``apply`` fix) the
    differences. Writers are held off for the duration so the comparison is exact."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Blocks reservations and settlements (they upsert totals) until we are done; a writer
        # already past its upsert finishes first, because LOCK waits for its row locks.
        cursor.execute("LOCK TABLE budgets_budgettotal IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(_LEDGER_SUMS)
        from_ledger = {(int(b), str(k)): (int(r or 0), int(s or 0)) for b, k, r, s in cursor.fetchall()}
        cursor.execute("SELECT budget_id, window_key, reserved_microusd, spent_microusd FROM budgets_budgettotal")
        stored = {(int(b), str(k)): (int(r), int(s)) for b, k, r, s in cursor.fetchall()}
        existing_budgets = set(Budget.objects.values_list("id", flat=True))
        differences: list[TotalDifference] = []
        for key in sorted(set(from_ledger) | set(stored)):
            if key[0] not in existing_budgets:
                continue
            ledger_reserved, ledger_spent = from_ledger.get(key, (0, 0))
            have = stored.get(key)
            if have == (ledger_reserved, ledger_spent) or (have is None and (ledger_reserved, ledger_spent) == (0, 0)):
                continue
            differences.append(
                TotalDifference(
                    budget_id=key[0],
                    window_key=key[1],
                    stored_reserved=have[0] if have else None,
                    stored_spent=have[1] if have else None,
                    ledger_reserved=ledger_reserved,
                    ledger_spent=ledger_spent,
                )
            )
        if apply and differences:
            for diff in differences:
                span = window_from_key(diff.window_key)
                cursor.execute(
                    "INSERT INTO budgets_budgettotal "
                    "(budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (budget_id, window_key) DO UPDATE SET "
                    "reserved_microusd = EXCLUDED.reserved_microusd, spent_microusd = EXCLUDED.spent_microusd, "
                    "updated_at = now()",
                    [diff.budget_id, diff.window_key, span.start, span.end, diff.ledger_reserved, diff.ledger_spent],
                )
        if differences or apply:
            journal_append_many(
                entries=[
                    NewEntry(
                        kind="budget.totals_rebuilt",
                        payload={
                            "differences": len(differences),
                            "applied": apply,
                            "sample": [d.as_dict() for d in differences[:20]],
                        },
                    )
                ]
            )
    return differences


# --- stale reservations -------------------------------------------------------------------------


def _open_reservations(older_than: timedelta, lookback: timedelta) -> Iterator[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.reservation_id, r.reserved_microusd, r.request_id, r.crew_id, r.mission_id, r.agent_id,
                   r.model, r.price_id, r.price_version, r.price_input_per_mtok, r.price_output_per_mtok,
                   r.price_cache_read_per_mtok, r.price_cache_write_per_mtok, r.budget_ids, r.window_keys,
                   r.id, EXTRACT(EPOCH FROM now() - r.created_at)::bigint
            FROM budgets_ledgerentry r
            WHERE r.kind = 'reservation' AND r.created_at < now() - %s AND r.created_at >= now() - %s
              AND NOT EXISTS (
                  SELECT 1 FROM budgets_ledgerentry c
                  WHERE c.reservation_id = r.reservation_id AND c.kind IN ('settlement', 'release')
              )
            ORDER BY r.id
            """,
            [older_than, older_than + lookback],
        )
        yield from cursor.fetchall()


def reservation_from_ledger(row: Sequence[Any]) -> Reservation:
    (rid, reserved, request_id, crew_id, mission_id, agent_id, model, price_id, price_version,
     p_in, p_out, p_cr, p_cw, budget_ids, window_keys, entry_id) = row[:16]  # fmt: skip
    budgets = {b.pk: b for b in Budget.objects.filter(pk__in=budget_ids)}
    lines = []
    for budget_id, key in zip(budget_ids, window_keys, strict=True):
        span = window_from_key(key)
        budget = budgets.get(budget_id)
        lines.append(
            BudgetLine(
                budget_id=int(budget_id),
                name=budget.name if budget else f"budget {budget_id}",
                scope=budget.scope if budget else "",
                scope_id=str(budget.scope_id) if budget and budget.scope_id else None,
                window=budget.window if budget else key.partition(":")[0],
                mode=budget.mode if budget else Mode.HARD,
                limit_microusd=budget.limit_microusd if budget else 1,
                warn_percent=budget.warn_percent if budget else None,
                block_percent=budget.block_percent if budget else 100,
                window_key=key,
                window_start=span.start,
                window_end=span.end,
            )
        )
    return Reservation(
        id=rid,
        amount_microusd=int(reserved),
        lines=tuple(lines),
        scopes=Scopes(crew_id=crew_id, mission_id=mission_id, agent_id=agent_id),
        request_id=request_id or "",
        pricing=Pricing(
            model=model or "",
            price_id=price_id,
            price_version=price_version,
            input_per_mtok=p_in,
            output_per_mtok=p_out,
            cache_read_per_mtok=p_cr,
            cache_write_per_mtok=p_cw,
        ),
        ledger_entry_id=int(entry_id),
    )


def reservation_load(*, reservation_id: uuid.UUID) -> Reservation | None:
    """An open reservation rebuilt from its ledger row (after a crash), or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.reservation_id, r.reserved_microusd, r.request_id, r.crew_id, r.mission_id, r.agent_id,
                   r.model, r.price_id, r.price_version, r.price_input_per_mtok, r.price_output_per_mtok,
                   r.price_cache_read_per_mtok, r.price_cache_write_per_mtok, r.budget_ids, r.window_keys, r.id
            FROM budgets_ledgerentry r
            WHERE r.kind = 'reservation' AND r.reservation_id = %s
              AND NOT EXISTS (
                  SELECT 1 FROM budgets_ledgerentry c
                  WHERE c.reservation_id = r.reservation_id AND c.kind IN ('settlement', 'release')
              )
            """,
            [reservation_id],
        )
        row = cursor.fetchone()
    return reservation_from_ledger(row) if row else None


def reservations_settle_stale(*, older_than: timedelta | None = None, lookback: timedelta = timedelta(days=2)) -> int:
    """Settle reservations whose process died at their worst case (the provider may have
    billed the call). Run by the worker's sweep and ``sweep_budget_reservations``.

    Only reservations made in the ``lookback`` before the staleness limit are examined (a
    time range the BRIN index answers): the sweep runs every minute, so older ones were seen
    already. After a long outage, run the command with a longer ``--lookback-hours``."""
    if older_than is None:
        older_than = timedelta(seconds=int(settings.BUDGETS_STALE_RESERVATION_SECONDS))
    count = 0
    for row in list(_open_reservations(older_than, lookback)):
        reservation = reservation_from_ledger(row)
        age = int(row[16])
        try:
            budget_settle(
                reservation=reservation,
                amount_microusd=reservation.amount_microusd,
                tokens=Tokens(),
                note="stale reservation settled at its worst case",
                journal=[
                    _entry(
                        "budget.stale_settled",
                        {
                            "reservation_id": str(reservation.id),
                            "amount_microusd": reservation.amount_microusd,
                            "age_seconds": age,
                        },
                        reservation.scopes,
                        reservation.request_id,
                    )
                ],
            )
            count += 1
        except Conflict:
            continue  # settled meanwhile by its own process
        except DatabaseError:
            logger.exception("could not settle stale reservation %s", reservation.id)
    return count
