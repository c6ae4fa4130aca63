"""Reserve and close as one statement each (outside a caller's transaction): the database
functions of migration budgets/0004, and the general path taking over when they refuse.
These commit for real (``committed_db``), each in a thread with its own connection."""

from __future__ import annotations

import uuid

import pytest

from apps.audit.models import JournalEntry
from apps.audit.verify import journal_verify
from apps.budgets import services
from apps.budgets.errors import BudgetExceeded
from apps.budgets.models import BudgetTotal, LedgerEntry
from apps.budgets.services import Scopes, Tokens, budget_create, budget_reserve, budget_settle, budget_totals_rebuild
from apps.core.errors import Conflict
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision

from .conftest import charge
from .test_concurrency import on_thread

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]


@pytest.fixture
def bare() -> Workspace:
    """A workspace with no budgets at all."""
    slug = f"bare-{uuid.uuid4().hex[:8]}"
    return on_thread_public(lambda: workspace_provision(name="No budgets", slug=slug).workspace)


def on_thread_public(func):  # type: ignore[no-untyped-def]
    import threading

    from django.db import connections

    result = []

    def run() -> None:
        try:
            result.append(func())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_with_no_budgets_a_call_reserves_and_settles_in_one_statement_each(bare: Workspace) -> None:
    scopes = Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())

    def calls() -> list[int]:
        amounts = []
        for n in range(3):  # the first learns the (empty) set of budgets; the others use it
            reservation = budget_reserve(scopes=scopes, charge=charge(5_000), request_id=f"bare-{n}")
            settlement = budget_settle(reservation=reservation, amount_microusd=1_234, tokens=Tokens(input=10))
            amounts.append(settlement.amount_microusd)
        assert services._lines_seen[services._lines_key(scopes)] == ()
        assert LedgerEntry.objects.filter(mission_id=scopes.mission_id).count() == 6
        kinds = list(
            JournalEntry.objects.filter(mission_id=scopes.mission_id).order_by("seq").values_list("kind", flat=True)
        )
        assert kinds == ["budget.reserved", "budget.settled"] * 3
        assert journal_verify().ok
        return amounts

    assert on_thread(bare, calls) == [1_234] * 3


def test_one_statement_reservations_count_against_every_budget_and_totals_match_the_ledger(acme: Workspace) -> None:
    scopes = Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())

    def calls() -> None:
        crew = budget_create(name="one-statement crew", scope="crew", scope_id=scopes.crew_id, window="day",
                             limit_microusd=100_000, mode="hard")  # fmt: skip
        agent = budget_create(name="one-statement agent", scope="agent", scope_id=scopes.agent_id, window="hour",
                              limit_microusd=100_000, mode="hard")  # fmt: skip
        for n in range(4):
            reservation = budget_reserve(scopes=scopes, charge=charge(10_000), request_id=f"one-{n}")
            budget_settle(reservation=reservation, amount_microusd=7_000, tokens=Tokens(input=10, output=5))
        for budget in (crew, agent):
            total = BudgetTotal.objects.get(budget=budget)
            assert (total.spent_microusd, total.reserved_microusd) == (28_000, 0)
        assert not [d for d in budget_totals_rebuild(apply=False) if d.budget_id in (crew.id, agent.id)]
        reservation = budget_reserve(scopes=scopes, charge=charge(1_000), request_id="one-closed")
        budget_settle(reservation=reservation, amount_microusd=1_000, tokens=Tokens())
        with pytest.raises(Conflict):
            budget_settle(reservation=reservation, amount_microusd=1_000, tokens=Tokens())

    on_thread(acme, calls)


def test_a_budget_created_after_the_last_reservation_is_enforced_at_once(acme: Workspace) -> None:
    scopes = Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())

    def calls() -> BudgetExceeded:
        budget_reserve(scopes=scopes, charge=charge(1_000), request_id="before")  # learns the budgets
        budget_create(name="late mission cap", scope="mission", scope_id=scopes.mission_id, window="mission",
                      limit_microusd=1_500, mode="hard")  # fmt: skip
        with pytest.raises(BudgetExceeded) as blocked:
            budget_reserve(scopes=scopes, charge=charge(2_000), request_id="after")
        # The blocked attempt is recorded and journaled like any other.
        assert LedgerEntry.objects.filter(mission_id=scopes.mission_id, kind="blocked").count() == 1
        assert JournalEntry.objects.filter(mission_id=scopes.mission_id, kind="budget.exceeded").count() == 1
        return blocked.value

    exceeded = on_thread(acme, calls)
    assert exceeded.scope == "mission"


def test_a_refused_one_statement_reservation_leaves_no_row_and_no_charge(acme: Workspace) -> None:
    """The function writes the ledger row before it locks and charges the windows; when a
    budget then blocks, everything it did is undone and the general path records the block."""
    scopes = Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())

    def calls() -> tuple[list[str], int]:
        budget = budget_create(name="tight agent", scope="agent", scope_id=scopes.agent_id, window="hour",
                               limit_microusd=5_000, mode="hard")  # fmt: skip
        budget_reserve(scopes=scopes, charge=charge(3_000), request_id="fits")  # learns the budgets
        with pytest.raises(BudgetExceeded):
            budget_reserve(scopes=scopes, charge=charge(3_000), request_id="too-much")
        kinds = list(
            LedgerEntry.objects.filter(mission_id=scopes.mission_id).order_by("id").values_list("kind", flat=True)
        )
        return kinds, BudgetTotal.objects.get(budget=budget).reserved_microusd

    kinds, reserved = on_thread(acme, calls)
    assert kinds == ["reservation", "blocked"]
    assert reserved == 3_000
