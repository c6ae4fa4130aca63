"""The gateway: routing, tier downgrade, fallbacks, failures, idempotency, fail-closed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError

from apps.audit.models import JournalEntry
from apps.budgets.errors import BudgetExceeded
from apps.budgets.models import BudgetTotal, LedgerEntry
from apps.budgets.services import budget_create
from apps.core.errors import GovernanceUnavailable
from apps.llm import gateway
from apps.llm.catalog.selectors import model_resolve
from apps.llm.catalog.services import global_default_set
from apps.llm.credentials import register_credential_resolver, unregister_credential_resolver
from apps.llm.devservers import FakeAnthropicServer
from apps.llm.errors import NoModelAvailable, ProviderFailed
from apps.llm.gateway import chat, worst_case_microusd
from apps.llm.models import CallStatus, LlmCall
from apps.llm.services import routing_rule_create, workspace_llm_settings_update
from apps.llm.tokens import estimate_input_tokens
from apps.llm.types import CallContext, ChatRequest, Message
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


@pytest.fixture
def in_acme(db: None, acme: Workspace) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


def ask(text: str = "Where is my parcel?", **request: Any) -> ChatRequest:
    return ChatRequest(messages=[Message.user(text)], system="You help customers.", **request)


def ctx(**kwargs: Any) -> CallContext:
    kwargs.setdefault("request_id", f"test-{uuid.uuid4().hex}")
    return CallContext(**kwargs)


def _routing(request_id: str) -> list[dict[str, Any]]:
    return [
        e.payload for e in JournalEntry.objects.filter(kind="routing.decided", request_id=request_id).order_by("seq")
    ]


def _anthropic_requests(server: FakeAnthropicServer) -> list[Any]:
    return [r for r in server.requests if r.path == "/v1/messages"]


# --- routing -----------------------------------------------------------------------------------


def test_routing_prefers_agent_then_crew_then_workspace_then_global(in_acme: Workspace) -> None:
    workspace_llm_settings_update(default_model="offline-small")
    global_default_set(model_id="offline-large")
    gateway_calls = [
        (ctx(agent_model="offline-medium", crew_model="offline-large"), "offline-medium", "agent"),
        (ctx(crew_model="offline-large"), "offline-large", "crew"),
        (ctx(), "offline-small", "workspace"),
    ]
    for context, model, source in gateway_calls:
        response = chat(request=ask(), context=context)
        assert response.model == model
        [decision] = _routing(response.request_id)
        assert (decision["model"], decision["source"]) == (model, source)
        assert decision["reason"].startswith(source)
    workspace_llm_settings_update(default_model="")
    response = chat(request=ask(), context=ctx())
    assert (response.model, _routing(response.request_id)[0]["source"]) == ("offline-large", "global")
    explicit = chat(request=ask(model="offline-small"), context=ctx(agent_model="offline-large"))
    assert (explicit.model, _routing(explicit.request_id)[0]["source"]) == ("offline-small", "explicit")


def test_an_unknown_model_is_skipped_and_the_reason_journaled(in_acme: Workspace) -> None:
    response = chat(request=ask(), context=ctx(agent_model="gpt-99-imaginary", crew_model="offline-small"))
    assert response.model == "offline-small"
    [decision] = _routing(response.request_id)
    assert decision["source"] == "crew"
    assert "gpt-99-imaginary" in decision["reason"] and decision["skipped"]


def test_no_model_anywhere_is_an_error(in_acme: Workspace) -> None:
    workspace_llm_settings_update(default_model="")
    global_default_set(model_id=None)
    mission_id = uuid.uuid4()
    with pytest.raises(NoModelAvailable) as caught:
        chat(request=ask(), context=ctx(agent_model="nope", mission_id=mission_id, purpose="triage"))
    assert caught.value.status_code == 503
    # The refusal is a routing decision too: journaled with its reason, and nothing reserved.
    entry = JournalEntry.objects.get(kind="routing.failed", mission_id=mission_id)
    assert entry.payload["reason"] == caught.value.message and entry.payload["purpose"] == "triage"
    assert any("nope" in skipped for skipped in entry.payload["skipped"])
    assert not LedgerEntry.objects.filter(mission_id=mission_id).exists()


def test_tier_downgrade_when_a_budget_passes_its_warning_threshold(in_acme: Workspace) -> None:
    mission_id = uuid.uuid4()
    model = model_resolve(model_id="offline-large")
    assert model is not None
    worst = worst_case_microusd(model, ask(), estimate_input_tokens(ask()))
    budget = budget_create(name="mission", scope="mission", scope_id=mission_id, window="mission",
                           limit_microusd=worst * 10, mode="tiered", warn_percent=50)  # fmt: skip
    rule = routing_rule_create(name="cheaper near the limit", trigger_scope="mission", to_model="offline-small")
    # A rule for another crew never applies.
    routing_rule_create(name="other crew", crew_id=uuid.uuid4(), to_model="offline-medium", priority=1)

    below = chat(request=ask(), context=ctx(mission_id=mission_id, agent_model="offline-large"))
    assert below.model == "offline-large"

    BudgetTotal.objects.filter(budget=budget).update(spent_microusd=worst * 5)  # now at 50%+
    above = chat(request=ask(), context=ctx(mission_id=mission_id, agent_model="offline-large"))
    assert above.model == "offline-small"
    [decision] = _routing(above.request_id)
    assert (decision["source"], decision["downgraded_from"], decision["rule_id"]) == (
        "downgrade",
        "offline-large",
        rule.pk,
    )
    assert decision["budget_id"] == budget.pk and "50%" in decision["reason"]
    # The reservation was taken at the cheaper model's prices.
    reservation = LedgerEntry.objects.get(request_id=above.request_id, kind="reservation")
    assert reservation.model == "offline-small"
    # Never "downgrade" upward: an agent already on a small model stays there.
    small = chat(request=ask(), context=ctx(mission_id=mission_id, agent_model="offline-small"))
    assert small.model == "offline-small" and _routing(small.request_id)[0]["source"] == "agent"


# --- fallbacks and failures --------------------------------------------------------------------


def test_overload_falls_back_along_the_models_list(in_acme: Workspace, fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.fail_next(1, status=529)
    response = chat(request=ask(), context=ctx(agent_model="claude-sonnet-4-6"))
    assert response.model == "claude-haiku-4-5"  # the first fallback of claude-sonnet-4-6
    sent = [r.body["model"] for r in _anthropic_requests(fake_anthropic)]
    assert sent == ["claude-sonnet-4-6", "claude-haiku-4-5"]
    decisions = _routing(response.request_id)
    assert [d["source"] for d in decisions] == ["agent", "fallback"]
    assert decisions[1]["fallback_from"] == "claude-sonnet-4-6" and "overloaded" in decisions[1]["reason"]
    kinds = list(LedgerEntry.objects.filter(request_id=response.request_id).order_by("id").values_list("kind", "model"))
    assert kinds[0] == ("reservation", "claude-sonnet-4-6")
    # The switch releases the first reservation and takes the second in one transaction.
    assert sorted(kinds[1:3]) == [("release", "claude-sonnet-4-6"), ("reservation", "claude-haiku-4-5")]
    assert kinds[3] == ("settlement", "claude-haiku-4-5")
    call = LlmCall.objects.get(request_id=response.request_id)
    assert (call.status, call.model, call.attempts) == (CallStatus.COMPLETED, "claude-haiku-4-5", 1)


def test_rate_limit_then_server_error_walks_the_whole_list(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    fake_anthropic.fail_next(1, status=429)
    fake_anthropic.fail_next(1, status=500)
    response = chat(request=ask(), context=ctx(agent_model="claude-opus-4-6"))
    assert response.model == "claude-sonnet-4-6"  # after claude-opus-4-6 and claude-opus-4-5


def test_a_failed_provider_call_releases_its_reservation(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    mission_id = uuid.uuid4()
    budget = budget_create(name="m", scope="mission", scope_id=mission_id, window="mission", limit_microusd=10**9)
    fake_anthropic.fail_next(1, status=400, message="prompt is too long")
    request_id = f"fail-{mission_id}"
    with pytest.raises(ProviderFailed) as caught:
        chat(request=ask(), context=ctx(mission_id=mission_id, agent_model="claude-sonnet-4-6", request_id=request_id))
    assert caught.value.status_code == 502
    assert "prompt is too long" in caught.value.message
    assert len(_anthropic_requests(fake_anthropic)) == 1  # a 400 is the request's fault: no fallback
    total = BudgetTotal.objects.get(budget=budget)
    assert (total.spent_microusd, total.reserved_microusd) == (0, 0)
    kinds = list(LedgerEntry.objects.filter(request_id=request_id).order_by("id").values_list("kind", flat=True))
    assert kinds == ["reservation", "release"]
    failed = JournalEntry.objects.get(kind="llm.failed", request_id=request_id)
    assert failed.payload["models"] == ["claude-sonnet-4-6"]
    assert LlmCall.objects.get(request_id=request_id).status == CallStatus.FAILED


def test_every_fallback_failing_releases_too(in_acme: Workspace, fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.fail_next(5, status=529)
    request_id = f"all-fail-{uuid.uuid4()}"
    with pytest.raises(ProviderFailed) as caught:
        chat(request=ask(), context=ctx(agent_model="claude-opus-4-6", request_id=request_id))
    assert caught.value.details["models"] == ["claude-opus-4-6", "claude-opus-4-5", "claude-sonnet-4-6"]
    open_reservations = LedgerEntry.objects.filter(request_id=request_id, kind="reservation").count()
    closed = LedgerEntry.objects.filter(request_id=request_id, kind__in=["release", "settlement"]).count()
    assert open_reservations == closed == 3


class _BrokenProvider:
    """A provider that breaks its contract: it raises instead of answering or raising ProviderError."""

    name = "anthropic"

    def __init__(self) -> None:
        self.calls = 0

    def chat(self, **_kwargs: Any) -> Any:
        self.calls += 1
        raise KeyError("choices")


def test_a_provider_that_raises_is_released_and_not_retried_elsewhere(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _BrokenProvider()
    monkeypatch.setattr(gateway, "get_provider", lambda _name: broken)
    request_id = f"broken-{uuid.uuid4()}"
    with pytest.raises(ProviderFailed) as caught:
        chat(request=ask(), context=ctx(agent_model="claude-sonnet-4-6", request_id=request_id))
    assert caught.value.status_code == 502
    assert caught.value.details["models"] == ["claude-sonnet-4-6"]  # it may have been billed: no second call
    assert "provider_exception" in caught.value.details["errors"][0] and "KeyError" in caught.value.message
    assert broken.calls == 1
    kinds = list(LedgerEntry.objects.filter(request_id=request_id).order_by("id").values_list("kind", flat=True))
    assert kinds == ["reservation", "release"]
    assert LlmCall.objects.get(request_id=request_id).status == CallStatus.FAILED
    assert JournalEntry.objects.filter(kind="llm.failed", request_id=request_id).exists()


def test_a_credential_store_that_cannot_be_consulted_fails_closed(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    def unreachable(_provider: str, _model: Any) -> Any:
        raise OperationalError("the vault's database is down")

    mission_id = uuid.uuid4()
    budget = budget_create(name="m", scope="mission", scope_id=mission_id, window="mission", limit_microusd=10**9)
    register_credential_resolver("test-unreachable", unreachable, priority=1)
    request_id = f"no-vault-{mission_id}"
    try:
        with pytest.raises(GovernanceUnavailable) as caught:
            chat(request=ask(), context=ctx(mission_id=mission_id, agent_model="claude-sonnet-4-6",
                                            request_id=request_id))  # fmt: skip
    finally:
        unregister_credential_resolver("test-unreachable")
    assert (caught.value.status_code, caught.value.code) == (503, "credentials_unavailable")
    assert _anthropic_requests(fake_anthropic) == []  # nothing left the box
    total = BudgetTotal.objects.get(budget=budget)
    assert (total.spent_microusd, total.reserved_microusd) == (0, 0)
    kinds = list(LedgerEntry.objects.filter(request_id=request_id).order_by("id").values_list("kind", flat=True))
    assert kinds == ["reservation", "release"]
    assert LlmCall.objects.get(request_id=request_id).status == CallStatus.FAILED


def test_a_resolver_that_raises_otherwise_counts_as_a_provider_error(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    def broken(provider: str, _model: Any) -> Any:
        if provider == "anthropic":
            raise ValueError("bad configuration")
        return None

    register_credential_resolver("test-broken", broken, priority=1)
    try:
        response = chat(request=ask(), context=ctx(agent_model="claude-sonnet-4-6"))
    except ProviderFailed as failed:
        assert all("credential_error" in e for e in failed.details["errors"])
        assert _anthropic_requests(fake_anthropic) == []
    else:
        raise AssertionError(f"the call went through on {response.model}")
    finally:
        unregister_credential_resolver("test-broken")


# --- budgets -------------------------------------------------------------------------------------


def test_a_blocked_call_never_reaches_the_provider(in_acme: Workspace, fake_anthropic: FakeAnthropicServer) -> None:
    crew_id = uuid.uuid4()
    budget_create(name="Tiny crew", scope="crew", scope_id=crew_id, window="day", limit_microusd=10)
    request_id = f"blocked-{crew_id}"
    with pytest.raises(BudgetExceeded) as caught:
        chat(request=ask(), context=ctx(crew_id=crew_id, agent_model="claude-sonnet-4-6", request_id=request_id))
    assert (caught.value.scope, caught.value.scope_id) == ("crew", str(crew_id))
    assert _anthropic_requests(fake_anthropic) == []
    assert LedgerEntry.objects.get(request_id=request_id).kind == "blocked"
    assert JournalEntry.objects.filter(kind="budget.exceeded", request_id=request_id).exists()
    assert JournalEntry.objects.filter(kind="routing.decided", request_id=request_id).exists()
    assert LlmCall.objects.get(request_id=request_id).status == CallStatus.BLOCKED


def test_the_reservation_is_the_worst_case_and_the_settlement_the_actual(in_acme: Workspace) -> None:
    request = ask(max_tokens=700)
    response = chat(request=request, context=ctx(agent_model="offline-medium"))
    model = model_resolve(model_id="offline-medium")
    assert model is not None
    reservation = LedgerEntry.objects.get(request_id=response.request_id, kind="reservation")
    settlement = LedgerEntry.objects.get(request_id=response.request_id, kind="settlement")
    assert reservation.reserved_microusd == worst_case_microusd(model, request, estimate_input_tokens(request))
    assert reservation.input_tokens == estimate_input_tokens(request) >= response.usage.input_tokens
    assert settlement.amount_microusd == response.cost_microusd < reservation.reserved_microusd
    assert settlement.reserved_microusd == -reservation.reserved_microusd


def test_max_tokens_is_capped_at_the_models_output_limit(in_acme: Workspace) -> None:
    response = chat(request=ask(max_tokens=10_000_000), context=ctx(agent_model="offline-small"))
    reservation = LedgerEntry.objects.get(request_id=response.request_id, kind="reservation")
    assert reservation.reserved_microusd < 10_000_000 * 5  # 64k output tokens at most, not ten million


# --- idempotency ---------------------------------------------------------------------------------


def test_a_repeated_request_id_is_answered_from_the_record_and_not_charged_again(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    context = ctx(agent_model="claude-haiku-4-5", request_id="mission-1:turn-3")
    first = chat(request=ask(), context=context)
    again = chat(request=ask(), context=context)
    assert not first.replayed and again.replayed
    assert (again.content, again.usage, again.cost_microusd, again.model) == (
        first.content,
        first.usage,
        first.cost_microusd,
        first.model,
    )
    assert len(_anthropic_requests(fake_anthropic)) == 1
    assert LedgerEntry.objects.filter(request_id="mission-1:turn-3", kind="settlement").count() == 1


def test_a_call_whose_process_died_resumes_under_its_reservation(in_acme: Workspace) -> None:
    """Simulate a crash between the reservation and the provider call."""
    context = ctx(agent_model="offline-medium", request_id="mission-2:turn-1")
    original = gateway._call_provider

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # the process dies: nothing is released

    gateway._call_provider = crash  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            chat(request=ask(), context=context)
    finally:
        gateway._call_provider = original  # type: ignore[assignment]
    assert LlmCall.objects.get(request_id="mission-2:turn-1").status == CallStatus.RESERVED
    response = chat(request=ask(), context=context)
    assert not response.replayed
    kinds = list(
        LedgerEntry.objects.filter(request_id="mission-2:turn-1").order_by("id").values_list("kind", flat=True)
    )
    assert kinds == ["reservation", "settlement"]  # one reservation, settled once
    call = LlmCall.objects.get(request_id="mission-2:turn-1")
    assert (call.status, call.attempts) == (CallStatus.COMPLETED, 2)


def test_a_blocked_call_can_be_retried_once_the_budget_allows(in_acme: Workspace) -> None:
    crew_id = uuid.uuid4()
    budget = budget_create(name="c", scope="crew", scope_id=crew_id, window="day", limit_microusd=1)
    context = ctx(crew_id=crew_id, agent_model="offline-small", request_id=f"retry-{crew_id}")
    with pytest.raises(BudgetExceeded):
        chat(request=ask(), context=context)
    from apps.budgets.services import budget_update

    budget_update(budget=budget, limit_microusd=10**9)
    assert chat(request=ask(), context=context).model == "offline-small"


# --- fail closed ---------------------------------------------------------------------------------


def test_if_the_budget_cannot_be_consulted_the_call_does_not_leave(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("connection to server lost")

    monkeypatch.setattr(gateway, "budget_try_reserve", database_down)
    with pytest.raises(GovernanceUnavailable) as caught:
        chat(request=ask(), context=ctx(agent_model="claude-haiku-4-5"))
    assert (caught.value.status_code, caught.value.code) == (503, "budget_unavailable")
    assert _anthropic_requests(fake_anthropic) == []


def test_if_the_journal_cannot_be_written_the_call_does_not_leave(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    from django.db import connection

    # The database refuses journal entries (the trigger goes away with the test's rollback):
    # whether they ride in the reservation's statement or follow it, nothing leaves.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.qd_journal_down() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'journal down'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER qd_journal_down BEFORE INSERT ON audit_journalentry "
            "FOR EACH ROW EXECUTE FUNCTION pg_temp.qd_journal_down()"
        )
    with pytest.raises(GovernanceUnavailable):
        chat(request=ask(), context=ctx(agent_model="claude-haiku-4-5"))
    assert _anthropic_requests(fake_anthropic) == []
