"""Concurrent calls never overspend: real threads, each with its own database connection,
against committed budgets (``committed_db``; every test uses fresh scope ids). Everything
touching the database runs in its own thread and commits, so the main thread's test
transaction (the django_db marker) stays empty."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.db import connections

from apps.budgets.errors import BudgetExceeded
from apps.budgets.models import BudgetTotal, LedgerEntry
from apps.budgets.services import Scopes, Tokens, budget_create, budget_reserve, budget_settle
from apps.llm.catalog.selectors import model_resolve
from apps.llm.devservers import FakeAnthropicServer, worst_case_responder
from apps.llm.gateway import chat, worst_case_microusd
from apps.llm.tokens import estimate_input_tokens
from apps.llm.types import CallContext, ChatRequest, Message
from apps.tenants.access import activate
from apps.tenants.models import Workspace

from .conftest import charge

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]

T = TypeVar("T")


def on_thread(workspace: Workspace, func: Callable[[], T]) -> T:
    """Run ``func`` in a fresh thread with its own connection in ``workspace``; commit."""
    result: list[T] = []

    def run(_index: int) -> None:
        activate(workspace)
        result.append(func())

    run_threads(1, run)
    return result[0]


def run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


@pytest.mark.slow
def test_concurrent_reservations_never_overspend_any_scope(acme: Workspace) -> None:
    crew_id, mission_id = uuid.uuid4(), uuid.uuid4()

    def setup() -> tuple[Any, Any]:
        mission = budget_create(name=f"race {mission_id.hex[:6]}", scope="mission", scope_id=mission_id,
                                window="mission", limit_microusd=40 * 1_000)  # fmt: skip
        crew = budget_create(name=f"race crew {crew_id.hex[:6]}", scope="crew", scope_id=crew_id, window="day",
                             limit_microusd=10**9)  # fmt: skip
        return mission, crew

    mission, crew = on_thread(acme, setup)
    admitted = [0] * 16
    blocked = [0] * 16

    def work(index: int) -> None:
        activate(acme)
        scopes = Scopes(crew_id=crew_id, mission_id=mission_id, agent_id=uuid.uuid4())
        # Each worker also has its own agent budget, so lock sets overlap only partly.
        budget_create(name=f"agent {index}", scope="agent", scope_id=scopes.agent_id, window="hour",
                      limit_microusd=10**9)  # fmt: skip
        while blocked[index] < 3:
            try:
                reservation = budget_reserve(scopes=scopes, charge=charge(1_000))
            except BudgetExceeded:
                blocked[index] += 1
                continue
            admitted[index] += 1
            if admitted[index] % 2:
                budget_settle(reservation=reservation, amount_microusd=1_000, tokens=Tokens(input=1))

    run_threads(16, work)

    def check() -> None:
        total = BudgetTotal.objects.get(budget=mission)
        assert sum(admitted) == 40
        assert total.spent_microusd + total.reserved_microusd == 40_000
        assert LedgerEntry.objects.filter(kind="reservation", mission_id=mission_id).count() == 40
        assert LedgerEntry.objects.filter(kind="blocked", mission_id=mission_id).count() == 48
        crew_total = BudgetTotal.objects.get(budget=crew)
        assert crew_total.spent_microusd + crew_total.reserved_microusd == 40_000

    on_thread(acme, check)


@pytest.mark.slow
def test_concurrent_gateway_calls_admit_exactly_what_the_budget_allows(acme: Workspace, settings: Any) -> None:
    """Through the gateway and the real anthropic SDK; the fake bills the worst case, so a
    budget sized for K calls admits exactly K and the spend lands exactly on the limit."""
    mission_id = uuid.uuid4()
    request = ChatRequest(system="You answer tickets.", messages=[Message.user("Where is my parcel?")], max_tokens=64)
    with FakeAnthropicServer(responder=worst_case_responder) as server:
        settings.LLM_ANTHROPIC_API_KEY = "sk-test"
        settings.LLM_ANTHROPIC_BASE_URL = server.url
        model = on_thread(acme, lambda: model_resolve(model_id="claude-haiku-4-5"))
        assert model is not None
        worst = worst_case_microusd(model, request, estimate_input_tokens(request))
        budget = on_thread(
            acme,
            lambda: budget_create(name=f"gw race {mission_id.hex[:6]}", scope="mission", scope_id=mission_id,
                                  window="mission", limit_microusd=12 * worst),
        )  # fmt: skip
        admitted = [0] * 8

        def work(index: int) -> None:
            activate(acme)
            for n in range(6):
                try:
                    chat(
                        request=request,
                        context=CallContext(mission_id=mission_id, agent_model="claude-haiku-4-5",
                                            request_id=f"race-{mission_id.hex[:8]}-{index}-{n}"),
                    )  # fmt: skip
                    admitted[index] += 1
                except BudgetExceeded:
                    pass

        run_threads(8, work)
        total = on_thread(acme, lambda: BudgetTotal.objects.get(budget=budget))
        assert sum(admitted) == 12
        assert (total.spent_microusd, total.reserved_microusd) == (12 * worst, 0)
        provider_calls = [r for r in server.requests if r.path == "/v1/messages"]
        assert len(provider_calls) == 12  # blocked calls never reached the provider


def test_a_reservation_of_its_own_is_on_disk_when_budget_reserve_returns(
    acme: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It commits without waiting for the disk (freeing the shared rows at once), then waits
    for the flush: the first call of a scope set (the general path) with a barrier of its
    own, later ones (one statement) with the barrier in the same round trip."""
    from apps.budgets import services

    asked: list[str] = []
    real_run, real_barrier = services.run_prepared, services.durability_barrier

    def run(sql: str, params: Any = (), *, durable: bool = False) -> Any:
        if "budgets_reserve" in sql:
            asked.append("reserve+barrier" if durable else "reserve")
        return real_run(sql, params, durable=durable)

    def barrier() -> None:
        asked.append("barrier")
        real_barrier()

    monkeypatch.setattr(services, "run_prepared", run)
    monkeypatch.setattr(services, "durability_barrier", barrier)
    agent_id = uuid.uuid4()

    def work() -> None:
        budget_create(name=f"durable {agent_id.hex[:6]}", scope="agent", scope_id=agent_id, window="hour",
                      limit_microusd=10**9)  # fmt: skip
        scopes = Scopes(agent_id=agent_id)
        for _ in range(2):
            reservation = budget_reserve(scopes=scopes, charge=charge(1_000))
            budget_settle(reservation=reservation, amount_microusd=1_000, tokens=Tokens(input=1))

    on_thread(acme, work)
    assert asked[-2:] == ["barrier", "reserve+barrier"]
