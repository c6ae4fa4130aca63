"""Reservations and closes that arrive together go to the database in one statement
(budgets_reserve_batch / budgets_close_batch, migration budgets/0006), with the outcome of
each as if it had come alone. Real threads, each with its own connection, on committed data
(``committed_db``, fresh scope ids per test). To make the batch certain, the first call
waits inside its statement until the others queue behind it; they then go together."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from apps.audit.models import JournalEntry
from apps.audit.verify import journal_verify
from apps.budgets import services
from apps.budgets.errors import BudgetExceeded
from apps.budgets.models import BudgetTotal, LedgerEntry
from apps.budgets.services import (
    Reservation,
    Scopes,
    Settlement,
    Tokens,
    budget_create,
    budget_reserve,
    budget_settle,
    budget_try_reserve,
)
from apps.core.errors import Conflict
from apps.tenants.access import activate
from apps.tenants.models import Workspace

from .conftest import charge
from .test_concurrency import on_thread, run_threads

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]


def _queued() -> int:
    return sum(len(calls) for calls in services._combiner._waiting.values())


@contextlib.contextmanager
def first_call_held(kind: str, behind: int) -> Iterator[list[int]]:
    """The first ``kind`` ("reserve"/"close") statement waits until ``behind`` calls queue
    behind it. Yields the sizes of the batch statements sent meanwhile."""
    name = "_reserve_alone" if kind == "reserve" else "_close_alone"
    alone = getattr(services, name)
    together = getattr(services, f"_{kind}_together")
    held = threading.Event()
    sizes: list[int] = []

    def first_waits(call: Any) -> Any:
        if not held.is_set():
            held.set()
            deadline = time.monotonic() + 30
            while _queued() < behind:
                assert time.monotonic() < deadline, "the other calls did not queue"
                time.sleep(0.002)
        return alone(call)

    def counted(calls: Any) -> Any:
        sizes.append(len(calls))
        return together(calls)

    with mock.patch.object(services, name, first_waits), mock.patch.object(services, f"_{kind}_together", counted):
        yield sizes


def _state(states: Any, budget: Any) -> Any:
    return next(state for state in states if state.line.budget_id == budget.id)


def _budgets(mission_limit: int) -> tuple[Scopes, Any, Any]:
    crew_id, mission_id = uuid.uuid4(), uuid.uuid4()
    mission = budget_create(name=f"batch {mission_id.hex[:6]}", scope="mission", scope_id=mission_id,
                            window="mission", limit_microusd=mission_limit)  # fmt: skip
    crew = budget_create(name=f"batch crew {crew_id.hex[:6]}", scope="crew", scope_id=crew_id, window="day",
                         limit_microusd=10**9)  # fmt: skip
    return Scopes(crew_id=crew_id, mission_id=mission_id), mission, crew


def test_reservations_that_arrive_together_are_decided_in_one_statement_each_as_if_alone(acme: Workspace) -> None:
    scopes, mission, crew = on_thread(acme, lambda: _budgets(100_000))
    on_thread(acme, lambda: budget_reserve(scopes=scopes, charge=charge(1_000)))  # the budgets are known
    outcomes: list[Any] = [None] * 7

    def work(index: int) -> None:
        activate(acme)
        outcomes[index] = budget_try_reserve(
            scopes=scopes, charge=charge(1_000 + index), request_id=f"req-{index}", async_commit=True, durable=True
        )

    with first_call_held("reserve", behind=6) as sizes:
        run_threads(7, work)
    assert sizes == [6]

    def check() -> None:
        amounts = 1_000 + sum(1_000 + i for i in range(7))
        for budget in (mission, crew):
            total = BudgetTotal.objects.get(budget=budget)
            assert (total.reserved_microusd, total.spent_microusd) == (amounts, 0)
        rows = LedgerEntry.objects.filter(mission_id=scopes.mission_id, kind="reservation")
        assert sorted(r.reserved_microusd for r in rows) == sorted([1_000] + [1_000 + i for i in range(7)])
        # Each saw the totals as the calls before it left them: the mission window's "before"
        # values step by the amounts, in the batch's order.
        befores = sorted(_state(o.states, mission).reserved_microusd for o in outcomes)
        steps = sorted(b - a for a, b in itertools.pairwise(befores))
        assert befores[0] >= 1_000 and all(1_000 <= step <= 1_006 for step in steps)
        for outcome in outcomes:
            assert outcome.reservation is not None and outcome.exceeded is None
            reservation_id = str(outcome.reservation.id)
            entry = JournalEntry.objects.get(kind="budget.reserved", payload__reservation_id=reservation_id)
            assert entry.request_id == outcome.reservation.request_id != ""
            ledger = LedgerEntry.objects.get(reservation_id=outcome.reservation.id, kind="reservation")
            assert ledger.id == outcome.reservation.ledger_entry_id and ledger.request_id == entry.request_id
        assert journal_verify().ok  # each entry kept its own call's time, and the chain holds

    on_thread(acme, check)


def test_a_batch_with_a_call_over_the_limit_sends_each_alone_and_admits_exactly_what_fits(acme: Workspace) -> None:
    scopes, mission, _crew = on_thread(acme, lambda: _budgets(3_000))
    on_thread(acme, lambda: budget_reserve(scopes=scopes, charge=charge(0)))  # the budgets are known
    admitted: list[Reservation] = []
    blocked: list[BudgetExceeded] = []

    def work(index: int) -> None:
        activate(acme)
        try:
            admitted.append(budget_reserve(scopes=scopes, charge=charge(1_000)))
        except BudgetExceeded as exc:
            blocked.append(exc)

    with first_call_held("reserve", behind=5) as sizes:
        run_threads(6, work)
    assert sizes == [5]  # the five went together, one of them did not fit: each went alone
    assert len(admitted) == 3 and len(blocked) == 3
    assert all(exc.scope == "mission" for exc in blocked)

    def check() -> None:
        total = BudgetTotal.objects.get(budget=mission)
        assert total.reserved_microusd == 3_000
        assert LedgerEntry.objects.filter(mission_id=scopes.mission_id, kind="reservation").count() == 4
        assert LedgerEntry.objects.filter(mission_id=scopes.mission_id, kind="blocked").count() == 3

    on_thread(acme, check)


def test_closes_that_arrive_together_are_applied_in_one_statement(acme: Workspace) -> None:
    scopes, mission, crew = on_thread(acme, lambda: _budgets(100_000))
    reservations = [on_thread(acme, lambda: budget_reserve(scopes=scopes, charge=charge(2_000))) for _ in range(5)]
    settled: list[Settlement] = [None] * 5  # type: ignore[list-item]

    def work(index: int) -> None:
        activate(acme)
        settled[index] = budget_settle(
            reservation=reservations[index], amount_microusd=100 * (index + 1), tokens=Tokens(input=10, output=index)
        )

    with first_call_held("close", behind=4) as sizes:
        run_threads(5, work)
    assert sizes == [4]
    spent = sum(100 * (i + 1) for i in range(5))

    def check() -> None:
        for budget in (mission, crew):
            total = BudgetTotal.objects.get(budget=budget)
            assert (total.reserved_microusd, total.spent_microusd) == (0, spent)
        rows = LedgerEntry.objects.filter(mission_id=scopes.mission_id, kind="settlement")
        assert sorted(r.amount_microusd for r in rows) == [100, 200, 300, 400, 500]
        assert {r.reservation_id for r in rows} == {r.id for r in reservations}
        # The totals each close reports are those after it: the last one's are the final ones.
        final = max((_state(s.states, mission) for s in settled), key=lambda state: state.spent_microusd)
        assert (final.spent_microusd, final.reserved_microusd) == (spent, 0)
        assert JournalEntry.objects.filter(kind="budget.settled", mission_id=scopes.mission_id).count() == 5
        assert journal_verify().ok

    on_thread(acme, check)


def test_a_reservation_closed_twice_in_one_batch_is_closed_once(acme: Workspace) -> None:
    scopes, mission, _crew = on_thread(acme, lambda: _budgets(100_000))
    first = on_thread(acme, lambda: budget_reserve(scopes=scopes, charge=charge(2_000)))
    twice = on_thread(acme, lambda: budget_reserve(scopes=scopes, charge=charge(3_000)))
    outcomes: list[Any] = [None] * 3

    def work(index: int) -> None:
        activate(acme)
        try:
            outcomes[index] = budget_settle(
                reservation=first if index == 0 else twice, amount_microusd=1_000, tokens=Tokens(input=1)
            )
        except Conflict as exc:
            outcomes[index] = exc

    with first_call_held("close", behind=2) as sizes:
        run_threads(3, work)
    assert sizes == [2]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(conflicts) == 1 and conflicts[0].code == "reservation_closed"

    def check() -> None:
        assert LedgerEntry.objects.filter(reservation_id=twice.id, kind="settlement").count() == 1
        total = BudgetTotal.objects.get(budget=mission)
        assert (total.reserved_microusd, total.spent_microusd) == (0, 2_000)

    on_thread(acme, check)


def test_with_combining_off_each_call_goes_alone(acme: Workspace, settings: Any) -> None:
    settings.BUDGETS_COMBINE_CONCURRENT_CALLS = False
    scopes, mission, _crew = on_thread(acme, lambda: _budgets(100_000))
    on_thread(acme, lambda: budget_reserve(scopes=scopes, charge=charge(0)))
    released = threading.Event()

    def work(index: int) -> None:
        activate(acme)
        if index:
            released.wait(10)  # start while the first call waits in its statement
        budget_reserve(scopes=scopes, charge=charge(1_000))

    real = services._reserve_alone

    def first_waits(call: Any) -> Any:
        if not released.is_set():
            released.set()
            time.sleep(0.2)  # the others arrive meanwhile, and do not wait for this one
        return real(call)

    with (
        mock.patch.object(services, "_reserve_alone", first_waits),
        mock.patch.object(services, "_reserve_together", lambda calls: pytest.fail("combined although switched off")),
    ):
        run_threads(4, work)
    assert on_thread(acme, lambda: BudgetTotal.objects.get(budget=mission).reserved_microusd) == 4_000
