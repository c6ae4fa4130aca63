"""The gateway outside a caller's transaction, as it runs in production: its reservations
and closes are the one-statement database functions (budgets/0004-0006), committed for
real (``committed_db``), each call in a thread with its own connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.budgets import services as budget_services
from apps.budgets.models import BudgetTotal, LedgerEntry
from apps.budgets.services import Scopes, Tokens, budget_create, budget_reserve, budget_settle
from apps.llm import gateway
from apps.llm.catalog.selectors import model_resolve
from apps.llm.devservers import FakeAnthropicServer
from apps.llm.errors import ProviderFailed
from apps.llm.gateway import chat, worst_case_microusd
from apps.llm.models import CallStatus, LlmCall
from apps.llm.services import routing_rule_create
from apps.llm.tokens import estimate_input_tokens
from apps.llm.types import CallContext, ChatRequest, Message
from apps.tenants.models import Workspace
from tests.budgets.conftest import charge
from tests.budgets.test_concurrency import on_thread

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]


def ask() -> ChatRequest:
    return ChatRequest(system="You help customers.", messages=[Message.user("Where is my parcel?")], max_tokens=256)


def _kinds(acme: Workspace, request_id: str) -> list[str]:
    return on_thread(
        acme,
        lambda: list(LedgerEntry.objects.filter(request_id=request_id).order_by("id").values_list("kind", flat=True)),
    )


def test_past_the_warning_threshold_the_call_is_downgraded(acme: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    mission_id, agent_id = uuid.uuid4(), uuid.uuid4()
    model = on_thread(acme, lambda: model_resolve(model_id="offline-large"))
    assert model is not None
    worst = worst_case_microusd(model, ask(), estimate_input_tokens(ask()))

    def setup() -> Any:
        budget = budget_create(name=f"downgrade {mission_id.hex[:6]}", scope="mission", scope_id=mission_id,
                               window="mission", limit_microusd=worst * 10, mode="tiered", warn_percent=50)  # fmt: skip
        rule = routing_rule_create(name="cheaper near the limit", trigger_scope="mission", agent_id=agent_id,
                                   to_model="offline-small")  # fmt: skip
        return budget, rule

    budget, rule = on_thread(acme, setup)

    def call() -> Any:
        context = CallContext(mission_id=mission_id, agent_id=agent_id, agent_model="offline-large",
                              request_id=f"dg-{uuid.uuid4().hex}")  # fmt: skip
        return chat(request=ask(), context=context)

    first, second = on_thread(acme, call), on_thread(acme, call)  # the second takes the one-statement path
    assert (first.model, second.model) == ("offline-large", "offline-large")

    def spend() -> None:  # past 50%: a settled call worth five worst cases
        reservation = budget_reserve(scopes=Scopes(mission_id=mission_id, agent_id=agent_id), charge=charge(worst * 5))
        budget_settle(reservation=reservation, amount_microusd=worst * 5, tokens=Tokens(input=1))

    on_thread(acme, spend)
    statements: list[str] = []
    real_run = budget_services.run_prepared

    def run(sql: str, params: Any = (), *, durable: bool = False) -> Any:
        statements.append(sql)
        return real_run(sql, params, durable=durable)

    monkeypatch.setattr(budget_services, "run_prepared", run)
    above = on_thread(acme, call)
    # The one statement was tried first; it refused (a budget past its warning threshold, and
    # the gateway asked to be told), so the general path decided the downgrade.
    assert any("budgets_reserve" in sql for sql in statements)
    assert above.model == "offline-small"

    def decision() -> dict[str, Any]:
        entry = JournalEntry.objects.get(kind="routing.decided", request_id=above.request_id)
        return dict(entry.payload)

    payload = on_thread(acme, decision)
    assert (payload["source"], payload["downgraded_from"], payload["rule_id"], payload["budget_id"]) == (
        "downgrade",
        "offline-large",
        rule.pk,
        budget.pk,
    )
    reservation = on_thread(acme, lambda: LedgerEntry.objects.get(request_id=above.request_id, kind="reservation"))
    assert reservation.model == "offline-small"  # reserved at the cheaper model's prices


@pytest.mark.parametrize("failure", ["http_400", "provider_raises"])
def test_a_failed_call_releases_its_reservation(
    acme: Workspace, settings: Any, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    mission_id = uuid.uuid4()
    budget = on_thread(
        acme,
        lambda: budget_create(name=f"release {mission_id.hex[:6]}", scope="mission", scope_id=mission_id,
                              window="mission", limit_microusd=10**9),
    )  # fmt: skip
    with FakeAnthropicServer() as server:
        settings.LLM_ANTHROPIC_API_KEY = "sk-ant-test-key"
        settings.LLM_ANTHROPIC_BASE_URL = server.url
        context = CallContext(mission_id=mission_id, agent_model="claude-haiku-4-5")
        # The scope set's first call takes the general path; the failing one does not.
        warm = on_thread(acme, lambda: chat(request=ask(), context=context))
        if failure == "http_400":
            server.fail_next(1, status=400, message="prompt is too long")
        else:
            real = gateway.get_provider

            def broken(name: str) -> Any:
                provider = real(name)

                class Broken:
                    def chat(self, **kwargs: Any) -> Any:
                        provider.chat(**kwargs)  # the provider was reached (and may bill) ...
                        raise AttributeError("'str' object has no attribute 'get'")  # ... its reply was unreadable

                return Broken()

            monkeypatch.setattr(gateway, "get_provider", broken)
        request_id = f"release-{uuid.uuid4().hex}"

        def call() -> ProviderFailed:
            with pytest.raises(ProviderFailed) as caught:
                chat(request=ask(), context=CallContext(mission_id=mission_id, agent_model="claude-haiku-4-5",
                                                        request_id=request_id))  # fmt: skip
            return caught.value

        error = on_thread(acme, call)
        assert error.details["models"] == ["claude-haiku-4-5"]
        assert len([r for r in server.requests if r.path == "/v1/messages"]) == 2
    assert _kinds(acme, request_id) == ["reservation", "release"]
    total = on_thread(acme, lambda: BudgetTotal.objects.get(budget=budget))
    assert (total.spent_microusd, total.reserved_microusd) == (warm.cost_microusd, 0)
    status = on_thread(acme, lambda: LlmCall.objects.get(request_id=request_id).status)
    assert status == CallStatus.FAILED
