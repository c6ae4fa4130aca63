"""How the governance hot paths (journal appends, budget reservations) talk to Postgres:
their statements (run_prepared) and their commit durability (durability_barrier).

A transaction that commits with ``synchronous_commit = off`` releases its row locks as soon
as its commit record is in the WAL buffers, instead of holding them through the fsync: one
workspace's writers then no longer queue behind the disk one at a time. Such a commit is
visible at once but could be lost in a crash, so nothing may act on it, or report it as
written, before ``durability_barrier()`` has returned. That barrier holds no lock, and
concurrent barriers share one fsync (Postgres flushes everything inserted so far).
"""

from __future__ import annotations

import contextlib
import functools
import re
import select
import struct
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import connection as _connection
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

connection: Any = _connection

# ``SET LOCAL synchronous_commit = off`` as a common table expression, so it rides in the
# statement that writes (no round trip of its own; a prepared statement holds one command).
# A SELECT CTE only runs when referenced: the main query must ``CROSS JOIN sc``.
ASYNC_COMMIT_CTE = "sc AS (SELECT set_config('synchronous_commit', 'off', true) AS v)"


def run_prepared(
    sql: str, params: Sequence[Any] | Mapping[str, Any] = (), *, durable: bool = False
) -> list[tuple[Any, ...]]:
    """Run one statement of the hot paths on Django's default connection; its rows.

    The journal's and the budgets' statements bypass Django's cursor wrapper: django-tenants
    would send a SET search_path before each Django cursor (a round trip), so they name their
    schema themselves. Each is prepared once per connection (and types of its parameters),
    so Postgres parses and plans it once, and runs with one blocking libpq call: psycopg's
    cursor machinery (non-blocking send, wait loop, result bookkeeping) costs here about as
    much client CPU as the server's whole round trip, on every model call. Parameters and
    rows go through psycopg's own dumpers and loaders, so values come back as from a cursor.
    Database errors come out as Django's, with psycopg's error as the cause.

    Keep psycopg's own statement preparation off on this connection (Django's default): after
    a ROLLBACK or a DROP psycopg sends DEALLOCATE ALL if it has prepared anything, which would
    drop these statements too (they are prepared again, but inside a transaction the failed
    attempt has spoilt it).

    Placeholders: ``%s`` (``%b`` binary, ``%t`` text) with a sequence, ``%(name)s`` with a
    mapping; ``%%`` for a percent sign.

    The statement runs in whatever the connection is in: autocommit, or the caller's open
    transaction. When Django has opened a transaction that psycopg has not begun on the
    server yet (no statement since ``atomic()``), it sends the BEGIN first, as psycopg would
    (with the connection's isolation level and access mode); psycopg then commits or rolls
    back that transaction as its own, since it goes by the server's transaction status.

    ``durable`` (for a statement that commits asynchronously, in autocommit): also wait until
    its commit is on disk, as ``durability_barrier()`` right after it would, but in the same
    round trip (both go out in one pipeline, each in a transaction of its own). If the
    statement fails, its error is raised; if only the barrier fails, the barrier's error is
    (the statement committed, but nothing may act on it). Inside a transaction it is ignored,
    like the barrier: the caller's commit decides.
    """
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    conn = db.connection
    pgconn = conn.pgconn
    query, formats, names = _positional(sql)
    if isinstance(params, Mapping):
        values: Sequence[Any] = [params[name] for name in names]
    else:
        values = params
    statements = _statements(conn)
    tx = statements.transformer
    with db.wrap_database_errors:
        if pgconn.transaction_status == pq.TransactionStatus.IDLE and not conn.autocommit:
            _check(conn, pgconn.exec_(_begin(conn)))
        dumped, types, param_formats = _dump(tx, values, formats)
        key = (sql, types)
        in_transaction = pgconn.transaction_status != pq.TransactionStatus.IDLE
        durable = durable and not in_transaction
        for attempt in (1, 2):
            name = statements.prepared(conn, key, query, types)
            if durable:
                barrier = statements.prepared(conn, (_BARRIER_SQL, ()), _BARRIER_SQL.encode(), ())
                result, flushed = _pipelined(pgconn, (name, dumped, param_formats), (barrier, None, None))
            else:
                result, flushed = pgconn.exec_prepared(name, dumped, param_formats), None
            if result.status == pq.ExecStatus.FATAL_ERROR and result.error_field(pq.DiagnosticField.SQLSTATE) in (
                b"26000",  # the server no longer has it (DEALLOCATE ALL, a pooler)
                b"0A000",  # a function it calls was redefined with another result type
            ):
                statements.names.pop(key, None)
                if durable:
                    statements.names.pop((_BARRIER_SQL, ()), None)
                if attempt == 1 and not in_transaction:
                    continue  # nothing ran and no transaction is spoilt: prepare it again
            break
        _check(conn, result)
        if flushed is not None:
            _check(conn, flushed)
        if result.status != pq.ExecStatus.TUPLES_OK:
            return []
        tx.set_pgresult(result)
        return tx.load_rows(0, result.ntuples, tuple)


def _dump(tx: Any, values: Sequence[Any], formats: Sequence[PyFormat]) -> tuple[Any, tuple[int, ...], Any]:
    """The parameters as the server receives them, their types and their formats. psycopg
    dumps each element of a list through Python-level dumpers; the hot paths' arrays (of
    text, integers, uuids, booleans and aware timestamps) are written here in PostgreSQL's
    binary array format instead, in a fraction of the time. Anything else goes to psycopg."""
    arrays: dict[int, tuple[int, bytes]] = {}
    for i, value in enumerate(values):
        if type(value) is list and value and formats[i] is not PyFormat.TEXT:
            encoded = binary_array(value)
            if encoded is not None:
                arrays[i] = encoded
    if not arrays:
        return tx.dump_sequence(values, formats), tuple(tx.types), tx.formats
    dumped = list(tx.dump_sequence([None if i in arrays else v for i, v in enumerate(values)], formats))
    types = list(tx.types)
    param_formats = list(tx.formats)
    for i, (oid, data) in arrays.items():
        dumped[i], types[i], param_formats[i] = data, oid, pq.Format.BINARY
    return dumped, tuple(types), param_formats


_PACK_LENGTH = struct.Struct("!i").pack
_NULL_ELEMENT = _PACK_LENGTH(-1)
_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _timestamptz(value: datetime) -> bytes:
    return struct.pack("!q", (value - _EPOCH_2000) // _MICROSECOND)


# Element type -> (array oid, element oid, encoder); integers by the size they need, as psycopg does.
_ELEMENTS: dict[type, tuple[int, int, Callable[[Any], bytes]]] = {
    str: (1009, 25, str.encode),
    uuid.UUID: (2951, 2950, lambda value: value.bytes),
    bool: (1000, 16, lambda value: b"\x01" if value else b"\x00"),
    datetime: (1185, 1184, _timestamptz),
}
_INTEGERS = (
    (2**15, (1005, 21, struct.Struct("!h").pack)),
    (2**31, (1007, 23, struct.Struct("!i").pack)),
    (2**63, (1016, 20, struct.Struct("!q").pack)),
)


def binary_array(values: Sequence[Any]) -> tuple[int, bytes] | None:
    """A one-dimensional list in PostgreSQL's binary array format, with its array type's
    oid; None if its elements are not all of one supported type (or None, a NULL)."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    kind = type(present[0])
    if any(type(value) is not kind for value in present):
        return None
    if kind is int:
        largest = max(max(present), -min(present) - 1)
        spec = next((spec for limit, spec in _INTEGERS if largest < limit), None)
    elif kind is datetime:
        spec = _ELEMENTS[datetime] if all(value.utcoffset() is not None for value in present) else None
    else:
        spec = _ELEMENTS.get(kind)
    if spec is None:
        return None
    array_oid, element_oid, encode = spec
    parts = [struct.pack("!iiIii", 1, len(present) < len(values), element_oid, len(values), 1)]
    for value in values:
        if value is None:
            parts.append(_NULL_ELEMENT)
        else:
            data = encode(value)
            parts.append(_PACK_LENGTH(len(data)))
            parts.append(data)
    return array_oid, b"".join(parts)


# A prepared statement to run: its name, dumped parameters and their formats.
Prepared = tuple[bytes, Sequence[Any] | None, Sequence[Any] | None]


def _pipelined(pgconn: Any, *statements: Prepared) -> list[Any]:
    """Run prepared statements in one round trip, each in a transaction of its own (a sync
    after each: in a pipeline, the statements before a sync share one transaction); their
    results, in order. If this fails half-way, the connection is closed: a connection left
    in pipeline mode with results pending is of no use to anyone."""
    pgconn.enter_pipeline_mode()
    try:
        for name, values, formats in statements:
            pgconn.send_query_prepared(name, values, formats)
            pgconn.pipeline_sync()
        while pgconn.flush():  # a non-blocking connection whose socket buffer is full
            select.select([], [pgconn.socket], [])
        results: list[Any] = []
        syncs = 0
        while syncs < len(statements):
            while pgconn.is_busy():  # wait in select, which lets other threads run
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                continue  # the end of one statement's results
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                syncs += 1
            else:
                results.append(result)
        pgconn.exit_pipeline_mode()
    except BaseException:
        pgconn.finish()
        raise
    return results


def _begin(conn: psycopg.Connection[Any]) -> bytes:
    parts = ["BEGIN"]
    if conn.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + conn.isolation_level.name.replace("_", " "))
    if conn.read_only is not None:
        parts.append("READ ONLY" if conn.read_only else "READ WRITE")
    if conn.deferrable is not None:
        parts.append("DEFERRABLE" if conn.deferrable else "NOT DEFERRABLE")
    return " ".join(parts).encode()


class PreparedCursor:
    """A cursor-shaped face of run_prepared, for code that runs several such statements."""

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        self._rows = run_prepared(sql, params)

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None


@contextlib.contextmanager
def prepared_cursor() -> Iterator[PreparedCursor]:
    """Statements prepared and run as by run_prepared (see there)."""
    yield PreparedCursor()


class _Statements:
    """One connection's statements prepared by run_prepared, and its adapter."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.transformer = Transformer(conn)
        self.names: dict[tuple[str, Any], bytes] = {}
        self._made = 0

    def prepared(
        self, conn: psycopg.Connection[Any], key: tuple[str, Any], query: bytes, types: Sequence[int] | None
    ) -> bytes:
        """The name of the statement ``key`` on this connection, preparing it if need be."""
        name = self.names.get(key)
        if name is None:
            # Never reused on a connection (psycopg's own are _pg3_N).
            self._made += 1
            name = f"qd_{self._made}".encode()
            _check(conn, conn.pgconn.prepare(name, query, types))
            self.names[key] = name
        return name


_prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], _Statements] = weakref.WeakKeyDictionary()


def _statements(conn: psycopg.Connection[Any]) -> _Statements:
    statements = _prepared.get(conn)
    if statements is None:
        statements = _prepared[conn] = _Statements(conn)
    return statements


def _check(conn: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?(.)")
_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}


@functools.lru_cache(maxsize=256)
def _positional(sql: str) -> tuple[bytes, tuple[PyFormat, ...], tuple[str, ...]]:
    """The statement with ``$1, $2 ...`` for its placeholders, each one's format, and the
    parameter names in ``$n`` order (empty for positional placeholders)."""
    formats: list[PyFormat] = []
    names: list[str] = []
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name, code = match.group(1), match.group(2)
        if code == "%" and name is None:
            return "%"
        if code not in _FORMATS:
            raise ValueError(f"unsupported placeholder {match.group(0)!r}")
        if name is None:
            if names:
                raise ValueError("positional and named placeholders in one statement")
            formats.append(_FORMATS[code])
            return f"${len(formats)}"
        if len(formats) > len(names):
            raise ValueError("positional and named placeholders in one statement")
        if name not in numbers:
            formats.append(_FORMATS[code])
            names.append(name)
            numbers[name] = len(names)
        return f"${numbers[name]}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(formats), tuple(names)


def durability_barrier() -> None:
    """Return once everything this connection has committed is on disk.

    One statement, no transaction and no lock: it writes a tiny non-transactional WAL record
    (a logical decoding message, which no consumer needs to read) and flushes the WAL up to
    it (the ``flush`` argument, PostgreSQL 17). The record comes after the commit records of
    this connection's earlier asynchronous commits, so when it is on disk, so are they.

    (A transaction that only takes an id, ``SELECT pg_current_xact_id()``, is not enough: a
    commit that wrote no other WAL is committed asynchronously whatever the setting says.)

    Inside a caller's transaction it does nothing: the caller's own commit decides.
    """
    if connection.in_atomic_block:
        return
    run_prepared(_BARRIER_SQL, ())


_BARRIER_SQL = "SELECT pg_logical_emit_message(false, 'quarterdeck.durability', '', true)"
