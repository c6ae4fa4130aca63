"""Commit durability for the governance hot paths (journal appends, budget reservations).

A transaction that commits with ``synchronous_commit = off`` releases its row locks as soon
as its commit record is in the WAL buffers, instead of holding them through the fsync: one
workspace's writers then no longer queue behind the disk one at a time. Such a commit is
visible at once but could be lost in a crash, so nothing may act on it, or report it as
written, before ``durability_barrier()`` has returned. That barrier holds no lock, and
concurrent barriers share one fsync (Postgres flushes everything inserted so far).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import connection as _connection

connection: Any = _connection

# ``SET LOCAL synchronous_commit = off`` as a common table expression, so it rides in the
# statement that writes (no round trip of its own; a prepared statement holds one command).
# A SELECT CTE only runs when referenced: the main query must ``CROSS JOIN sc``.
ASYNC_COMMIT_CTE = "sc AS (SELECT set_config('synchronous_commit', 'off', true) AS v)"


@contextlib.contextmanager
def prepared_cursor() -> Iterator[Any]:
    """A psycopg cursor on Django's default connection whose statements are prepared.

    The hot statements of the journal and the budgets bypass Django's cursor wrapper:
    django-tenants would send a SET search_path before each Django cursor (a round trip), so
    they name their schema themselves. Django turns psycopg's preparation off for the whole
    connection (prepare_threshold=None); it is on only around these statements, whose text is
    the same on every call, so Postgres parses and plans each once per connection. Database
    errors come out as Django's.
    """
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    conn = db.connection
    saved = conn.prepare_threshold
    conn.prepare_threshold = 0
    try:
        with db.wrap_database_errors, psycopg.Cursor(conn) as cursor:
            yield cursor
    finally:
        conn.prepare_threshold = saved


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
    connection.ensure_connection()
    with connection.wrap_database_errors:
        connection.connection.execute(_BARRIER_SQL)


_BARRIER_SQL = "SELECT pg_logical_emit_message(false, 'quarterdeck.durability', '', true)"
