"""The ledger is append-only in the database itself, and running totals follow it."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from apps.budgets.models import BudgetTotal, LedgerEntry
from apps.budgets.services import (
    Scopes,
    Tokens,
    budget_adjust,
    budget_create,
    budget_release,
    budget_reserve,
    budget_settle,
    budget_totals_rebuild,
)
from apps.core.errors import Conflict
from apps.tenants.models import Workspace

from .conftest import PRICING, charge


@pytest.fixture
def entry(in_acme: object, scopes: Scopes) -> LedgerEntry:
    budget_create(name="crew", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=10_000)
    reservation = budget_reserve(scopes=scopes, charge=charge(1_000), request_id="req-append-only")
    return LedgerEntry.objects.get(pk=reservation.ledger_entry_id)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE budgets_ledgerentry SET amount_microusd = 0 WHERE id = %s",
        "DELETE FROM budgets_ledgerentry WHERE id = %s",
        "TRUNCATE budgets_ledgerentry",
        "TRUNCATE budgets_ledgerentry CASCADE",
    ],
)
def test_database_rejects_changing_the_ledger(entry: LedgerEntry, statement: str) -> None:
    params = [entry.pk] if "%s" in statement else []
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
    assert LedgerEntry.objects.filter(pk=entry.pk, amount_microusd=entry.amount_microusd).exists()


def test_orm_update_and_delete_are_rejected_too(entry: LedgerEntry) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(note="edited")
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_every_entry_records_model_prices_tokens_and_scope_chain(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(name="mission", scope="mission", scope_id=scopes.mission_id, window="mission",
                           limit_microusd=1_000_000)  # fmt: skip
    reservation = budget_reserve(scopes=scopes, charge=charge(2_000), request_id="req-prices")
    budget_settle(reservation=reservation, amount_microusd=1_234, tokens=Tokens(input=90, output=20, cache_read=5))
    rows = list(LedgerEntry.objects.filter(reservation_id=reservation.id).order_by("id"))
    assert [r.kind for r in rows] == ["reservation", "settlement"]
    for row in rows:
        assert (row.model, row.price_id, row.price_version) == ("claude-haiku-4-5", 42, 3)
        assert (row.price_input_per_mtok, row.price_output_per_mtok) == (
            PRICING.input_per_mtok,
            PRICING.output_per_mtok,
        )
        assert (row.price_cache_read_per_mtok, row.price_cache_write_per_mtok) == (100_000, 1_250_000)
        assert (row.crew_id, row.mission_id, row.agent_id) == (scopes.crew_id, scopes.mission_id, scopes.agent_id)
        assert row.request_id == "req-prices"
        assert budget.pk in row.budget_ids
        assert f"mission:{scopes.mission_id}" in row.window_keys
    assert (rows[0].reserved_microusd, rows[0].amount_microusd, rows[0].requested_microusd) == (2_000, 0, 2_000)
    assert (rows[1].reserved_microusd, rows[1].amount_microusd) == (-2_000, 1_234)
    assert (rows[1].input_tokens, rows[1].output_tokens, rows[1].cache_read_tokens) == (90, 20, 5)


def test_a_reservation_is_closed_at_most_once(in_acme: object, scopes: Scopes) -> None:
    budget_create(name="agent", scope="agent", scope_id=scopes.agent_id, window="hour", limit_microusd=1_000_000)
    reservation = budget_reserve(scopes=scopes, charge=charge(500))
    budget_settle(reservation=reservation, amount_microusd=400, tokens=Tokens(input=1))
    with pytest.raises(Conflict) as caught, transaction.atomic():
        budget_release(reservation=reservation, reason="late failure")
    assert caught.value.code == "reservation_closed"
    total = BudgetTotal.objects.get(budget__scope_id=scopes.agent_id)
    assert (total.spent_microusd, total.reserved_microusd) == (400, 0)


def test_rebuild_reports_and_fixes_drifted_totals(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(name="crew", scope="crew", scope_id=scopes.crew_id, window="month", limit_microusd=10**9)
    for amount in (1_000, 2_000, 3_000):
        reservation = budget_reserve(scopes=scopes, charge=charge(amount))
        budget_settle(reservation=reservation, amount_microusd=amount // 2, tokens=Tokens(input=10))
    open_reservation = budget_reserve(scopes=scopes, charge=charge(700))
    budget_adjust(scopes=scopes, amount_microusd=-250, note="provider credit")
    assert [d for d in budget_totals_rebuild() if d.budget_id == budget.pk] == []

    BudgetTotal.objects.filter(budget=budget).update(spent_microusd=1, reserved_microusd=2)
    differences = [d for d in budget_totals_rebuild() if d.budget_id == budget.pk]
    assert len(differences) == 1
    diff = differences[0]
    assert (diff.stored_spent, diff.stored_reserved) == (1, 2)
    assert (diff.ledger_spent, diff.ledger_reserved) == (3_000 - 250, open_reservation.amount_microusd)
    budget_totals_rebuild(apply=True)
    total = BudgetTotal.objects.get(budget=budget)
    assert (total.spent_microusd, total.reserved_microusd) == (2_750, 700)
    assert [d for d in budget_totals_rebuild() if d.budget_id == budget.pk] == []


def test_the_rebuild_command_reports_then_fixes_differences(in_acme: Workspace, scopes: Scopes) -> None:
    budget = budget_create(name="cmd", scope="agent", scope_id=scopes.agent_id, window="day", limit_microusd=10**9)
    reservation = budget_reserve(scopes=scopes, charge=charge(4_000))
    budget_settle(reservation=reservation, amount_microusd=1_500, tokens=Tokens(input=10))
    BudgetTotal.objects.filter(budget=budget).update(spent_microusd=99)

    def run(*args: str) -> list[str]:
        out = io.StringIO()
        call_command("rebuild_budget_totals", "--workspace", in_acme.slug, *args, stdout=out)
        return out.getvalue().splitlines()

    report = run()
    assert report[0].startswith(f"{in_acme.slug}: found ")
    mine = [json.loads(line) for line in report[1:-1] if f'"budget_id": {budget.pk},' in line]
    assert [(d["stored_spent"], d["ledger_spent"]) for d in mine] == [(99, 1_500)]
    assert BudgetTotal.objects.get(budget=budget).spent_microusd == 99  # reported, not changed
    assert json.loads(report[-1])["applied"] is False
    assert json.loads(run("--apply")[-1])["applied"] is True
    assert BudgetTotal.objects.get(budget=budget).spent_microusd == 1_500
    assert not [line for line in run()[1:-1] if f'"budget_id": {budget.pk},' in line]
    with pytest.raises(CommandError):
        call_command("rebuild_budget_totals", "--workspace", "no-such-workspace", stdout=io.StringIO())


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_own_transactions_do_not_hold_locks_through_an_fsync(in_acme: object, scopes: Scopes) -> None:
    """async_commit turns synchronous_commit off for that transaction only; a caller's
    transaction (as here, inside the test's) is left alone unless asked."""
    from apps.budgets.services import budget_try_reserve
    from apps.core.db import durability_barrier

    assert _synchronous_commit() == "on"
    budget_reserve(scopes=scopes, charge=charge(10))  # inside a caller's transaction: untouched
    assert _synchronous_commit() == "on"
    budget_try_reserve(scopes=scopes, charge=charge(10), async_commit=True)
    assert _synchronous_commit() == "off"
    durability_barrier()  # a no-op inside a transaction: the caller's commit decides


def test_hot_path_functions_keep_generic_plans(in_acme: Workspace) -> None:
    """Every reserve, close and journal append function of a workspace plans its statements
    once per connection (budgets/0007, audit/0008), including functions added since: a
    CREATE OR REPLACE that drops the setting fails here."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND (p.proname LIKE 'budgets\\_reserve%%' OR p.proname LIKE 'budgets\\_close%%' "
            "OR p.proname LIKE 'audit\\_journal\\_append%%') ORDER BY p.proname",
            [connection.schema_name],
        )
        rows = cursor.fetchall()
    assert [name for name, _ in rows] == [
        "audit_journal_append",
        "audit_journal_append_each",
        "budgets_close",
        "budgets_close_batch",
        "budgets_reserve",
        "budgets_reserve_batch",
    ]
    assert {name: config for name, config in rows} == {name: ["plan_cache_mode=force_generic_plan"] for name, _ in rows}
