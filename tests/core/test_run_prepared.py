"""apps.core.db.run_prepared: the hot paths' statements, prepared and run through libpq."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import DataError, IntegrityError, ProgrammingError, connection, transaction

from apps.core import db
from apps.core.db import _positional, binary_array, run_prepared
from tests.budgets.test_concurrency import run_threads

pytestmark = pytest.mark.django_db


@pytest.fixture
def scratch() -> Iterator[str]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS public.qd_run_prepared_probe (id integer PRIMARY KEY, note text)")
    yield "public.qd_run_prepared_probe"


def test_values_come_back_typed_as_from_a_cursor() -> None:
    at = datetime(2026, 12, 3, 10, 30, 0, 123456, tzinfo=UTC)
    ident = uuid.uuid4()
    rows = run_prepared(
        "SELECT %s::bigint + 1, %s::timestamptz, %s::uuid, %s::text[], %b::bytea, 100 %% 7",
        [41, at, ident, ["a", 'b "quoted"'], b"\x00\x01"],
    )
    assert rows == [(42, at, ident, ["a", 'b "quoted"'], b"\x00\x01", 2)]
    assert run_prepared("SELECT 1 WHERE false", []) == []


ARRAYS = [
    pytest.param(["a", 'b "quoted"', "c,d", "{e}", "back\\slash", "", "ünïcode ✓", None], "text[]", id="text"),
    pytest.param([1, -2, 32767, -32768, None], "smallint[]", id="int2"),
    pytest.param([1, 2**31 - 1, -(2**31)], "integer[]", id="int4"),
    pytest.param([2**31, -(2**63), 2**63 - 1], "bigint[]", id="int8"),
    pytest.param([True, False, None], "boolean[]", id="bool"),
    pytest.param([uuid.uuid4(), None, uuid.UUID(int=0)], "uuid[]", id="uuid"),
    pytest.param(
        [
            datetime(2026, 12, 4, 5, 6, 7, 890123, tzinfo=UTC),
            datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            None,
        ],
        "timestamp with time zone[]",
        id="timestamptz",
    ),
]


@pytest.mark.parametrize(("values", "sql_type"), ARRAYS)
def test_lists_go_as_binary_arrays_and_come_back_equal(
    values: list[object], sql_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = binary_array(values)
    assert encoded is not None
    written: list[tuple[int, bytes] | None] = []
    monkeypatch.setattr(db, "binary_array", lambda v: written.append(binary_array(v)) or written[-1])
    rows = run_prepared(
        "SELECT %s, pg_typeof(%s)::text, array_length(%s, 1), cardinality(array_remove(%s, NULL))", [values] * 4
    )
    assert rows == [(values, sql_type, len(values), sum(v is not None for v in values))]
    assert written == [encoded] * 4


@pytest.mark.parametrize("values", [[1, "a"], [True, 1]], ids=["mixed", "bool-and-int"])
def test_lists_of_mixed_types_are_refused_as_psycopg_refuses_them(values: list[object]) -> None:
    assert binary_array(values) is None
    with pytest.raises(DataError, match="mixed types"):
        run_prepared("SELECT %s::text", [values])


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([None, None], id="only-nulls"),
        pytest.param([datetime(2026, 1, 1)], id="naive-datetime"),
        pytest.param([2**63], id="beyond-int8"),
        pytest.param([[1, 2]], id="nested"),
    ],
)
def test_lists_not_written_here_are_left_to_psycopg(values: list[object]) -> None:
    assert binary_array(values) is None
    rows = run_prepared("SELECT %s::text", [values])
    assert rows and isinstance(rows[0][0], str)


def test_named_placeholders_may_repeat() -> None:
    assert run_prepared("SELECT %(a)s::int, %(b)s::int, %(a)s::int + %(b)s::int", {"a": 2, "b": 3}) == [(2, 3, 5)]
    assert _positional("SELECT %(a)s, %(b)s, %(a)s") == (
        b"SELECT $1, $2, $1",
        _positional("SELECT %s, %s")[1],
        ("a", "b"),
    )
    with pytest.raises(ValueError, match="positional and named"):
        _positional("SELECT %s, %(a)s")
    with pytest.raises(ValueError, match="unsupported"):
        _positional("SELECT %d")


def test_a_statement_first_in_an_atomic_block_is_part_of_its_transaction(scratch: str) -> None:
    # Nothing has been sent since atomic(): run_prepared must begin the transaction itself,
    # or the insert would commit on its own and survive the rollback.
    with pytest.raises(RuntimeError), transaction.atomic():
        run_prepared(f"INSERT INTO {scratch} VALUES (%s, %s)", [1, "rolled back"])
        raise RuntimeError
    assert run_prepared(f"SELECT count(*) FROM {scratch} WHERE id = %s", [1]) == [(0,)]


def test_errors_are_djangos_with_the_sqlstate(scratch: str) -> None:
    with transaction.atomic():
        run_prepared(f"INSERT INTO {scratch} VALUES (%s, %s)", [2, "first"])
        with pytest.raises(IntegrityError) as caught, transaction.atomic():
            run_prepared(f"INSERT INTO {scratch} VALUES (%s, %s)", [2, "second"])
        assert getattr(caught.value.__cause__, "sqlstate", None) == "23505"
        # The savepoint rolled back: the transaction goes on.
        assert run_prepared(f"SELECT note FROM {scratch} WHERE id = %s", [2]) == [("first",)]


@pytest.mark.usefixtures("committed_db")
def test_statements_lost_on_the_server_are_prepared_again_outside_a_transaction() -> None:
    def work() -> None:
        assert connection.get_autocommit()
        assert run_prepared("SELECT %s::int * 2", [21]) == [(42,)]
        connection.connection.execute("DEALLOCATE ALL")  # as psycopg does after a ROLLBACK, or a pooler
        assert run_prepared("SELECT %s::int * 2", [4]) == [(8,)]
        # Inside a transaction the failed attempt has already spoilt it: no silent retry.
        connection.connection.execute("DEALLOCATE ALL")
        with pytest.raises(ProgrammingError), transaction.atomic():
            run_prepared("SELECT %s::int * 2", [5])
        assert run_prepared("SELECT %s::int * 2", [5]) == [(10,)]

    run_threads(1, lambda _index: work())  # its own connection, in autocommit


# An asynchronous commit, as the hot paths make: it returns the WAL position its changes
# reached, so a test can compare it with what the server has flushed since. The table is
# committed (these tests run on connections of their own) and dropped again.
_DURABLE_TABLE = "public.qd_run_prepared_durable"
_ASYNC_INSERT = (
    "WITH sc AS (SELECT set_config('synchronous_commit', 'off', true)), "
    f"ins AS (INSERT INTO {_DURABLE_TABLE} VALUES (%s, %s) RETURNING id) "
    "SELECT (SELECT id FROM ins), pg_current_wal_insert_lsn() - '0/0'::pg_lsn FROM sc"
)
_FLUSHED = "SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn"


def _with_durable_table(work: Callable[[], None]) -> None:
    def run(_index: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {_DURABLE_TABLE} (id integer PRIMARY KEY, note text)")
        try:
            work()
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {_DURABLE_TABLE}")

    run_threads(1, run)  # its own connection, in autocommit


@pytest.mark.usefixtures("committed_db")
def test_durable_returns_once_the_asynchronous_commit_is_flushed() -> None:
    def work() -> None:
        pid = connection.connection.info.backend_pid
        for n in range(20):
            # Without the barrier the WAL writer flushes an asynchronous commit only within
            # a few hundred milliseconds, so twenty in a row would not all be on disk.
            [(ident, written)] = run_prepared(_ASYNC_INSERT, [n, "durable"], durable=True)
            [(flushed,)] = run_prepared(_FLUSHED, [])
            assert ident == n
            assert int(flushed) >= int(written)
        # One connection throughout, out of pipeline mode, back in autocommit.
        assert connection.connection.info.backend_pid == pid
        assert connection.connection.pgconn.pipeline_status == 0
        assert run_prepared("SELECT current_setting('synchronous_commit')", []) == [("on",)]

    _with_durable_table(work)


@pytest.mark.usefixtures("committed_db")
def test_durable_raises_the_statements_error_and_leaves_the_connection_usable() -> None:
    def work() -> None:
        run_prepared(_ASYNC_INSERT, [1, "first"], durable=True)
        with pytest.raises(IntegrityError) as caught:
            run_prepared(_ASYNC_INSERT, [1, "again"], durable=True)
        assert getattr(caught.value.__cause__, "sqlstate", None) == "23505"
        assert run_prepared(f"SELECT note FROM {_DURABLE_TABLE} WHERE id = %s", [1]) == [("first",)]
        # A statement the server lost is prepared again, the barrier with it.
        connection.connection.execute("DEALLOCATE ALL")
        [(ident, _written)] = run_prepared(_ASYNC_INSERT, [2, "after deallocate"], durable=True)
        assert ident == 2

    _with_durable_table(work)


def test_durable_inside_a_transaction_leaves_it_to_the_callers_commit(scratch: str) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        run_prepared(f"INSERT INTO {scratch} VALUES (%s, %s)", [3000, "rolled back"], durable=True)
        assert connection.connection.pgconn.pipeline_status == 0
        raise RuntimeError
    assert run_prepared(f"SELECT count(*) FROM {scratch} WHERE id = %s", [3000]) == [(0,)]
