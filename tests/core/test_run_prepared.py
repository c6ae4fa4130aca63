"""apps.core.db.run_prepared: the hot paths' statements, prepared and run through libpq."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from apps.core.db import _positional, run_prepared
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
