"""The LLM gateway: the only way a model call leaves the box.

    from apps.llm.gateway import chat
    from apps.llm.types import CallContext, ChatRequest, Message, ToolSpec

    response = chat(
        request=ChatRequest(system="...", messages=[Message.user("...")], tools=[ToolSpec(...)], max_tokens=1024),
        context=CallContext(crew_id=..., mission_id=..., agent_id=..., request_id="mission-42:step-7",
                            agent_model="claude-haiku-4-5", crew_model="claude-sonnet-4-6"),
    )
    response.content, response.tool_calls, response.stop_reason, response.usage, response.cost_microusd

Call it with the workspace's schema active and OUTSIDE any transaction of yours (the
reservation must commit before the provider is called, so concurrent calls see it).

What happens, in order:

1. Route (explicit model > agent > crew > workspace > global default; see ``routing``).
2. One transaction: reserve the worst case (counted input tokens + max_tokens at the model's
   prices) against every applicable budget, possibly downgrading the model's tier when a
   budget is past its warning threshold; journal the routing decision and the reservation;
   record the call under its request id. A blocked call is recorded and journaled too, then
   ``BudgetExceeded`` (402, ``budget_exceeded``) is raised and the provider is never called.
   If the budget cannot be consulted (database down...), ``GovernanceUnavailable`` (503) is
   raised and the provider is never called: the gateway fails closed.
3. Call the provider. On an error worth it (overload, rate limit, 5xx, network, missing or
   rejected key) try the model's fallbacks in order, re-reserving for each (journaled). A
   provider that raises anything but a ``ProviderError`` is not retried elsewhere (it may
   have billed the call); a credential store that cannot be consulted fails the call closed
   (``GovernanceUnavailable``). Either way the reservation is released first.
4. One transaction: settle the reservation to the actual usage at the model's prices,
   journal ``llm.completed``, store the response. Or, if every model failed: release the
   reservation, journal ``llm.failed`` and raise ``ProviderFailed`` (502).

Idempotency: a repeated ``request_id`` returns the stored response (``replayed=True``)
without calling or charging again; a call whose process died after reserving is resumed
under its existing reservation; a blocked or failed one is tried afresh.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from django.db import DatabaseError, transaction
from django.db import connection as _connection

from apps.audit.services import NewEntry, journal_append_many
from apps.budgets import services as budget_services
from apps.budgets.errors import BudgetExceeded
from apps.budgets.services import (
    BudgetState,
    Charge,
    Companion,
    Pricing,
    Reservation,
    ReserveOutcome,
    Scopes,
    Tokens,
    budget_release,
    budget_settle,
    budget_try_reserve,
    durable_reservations,
    durable_settlements,
    reservation_load,
)
from apps.core.db import durability_barrier
from apps.core.errors import Conflict, GovernanceUnavailable, QuarterdeckError
from apps.core.money import token_cost

from .catalog.selectors import ResolvedModel, model_resolve
from .credentials import resolve_credential
from .errors import NoModelAvailable, ProviderFailed
from .providers import ProviderError, get_provider
from .routing import Route, downgrade_for, route_for
from .tokens import estimate_input_tokens
from .types import CallContext, ChatRequest, ChatResponse, ProviderReply, ToolUseBlock, Usage

connection: Any = _connection

logger = logging.getLogger(__name__)


# --- prices -------------------------------------------------------------------------------------


def pricing_of(model: ResolvedModel) -> Pricing:
    price = model.price
    return Pricing(
        model=model.model_id,
        price_id=price.id,
        price_version=price.version,
        input_per_mtok=price.input_per_mtok,
        output_per_mtok=price.output_per_mtok,
        cache_read_per_mtok=price.cache_read_per_mtok,
        cache_write_per_mtok=price.cache_write_per_mtok,
    )


def effective_max_tokens(model: ResolvedModel, request: ChatRequest) -> int:
    return max(1, min(request.max_tokens, model.max_output_tokens))


def worst_case_microusd(model: ResolvedModel, request: ChatRequest, input_tokens: int) -> int:
    """Every input token at the dearest input rate it could be billed at, plus max_tokens."""
    price = model.price
    input_rate = price.input_per_mtok
    if request.cache_prompt:
        input_rate = max(input_rate, price.cache_write_per_mtok)
    return token_cost(input_tokens, input_rate) + token_cost(
        effective_max_tokens(model, request), price.output_per_mtok
    )


def cost_microusd(model: ResolvedModel, usage: Usage) -> int:
    price = model.price
    return (
        token_cost(usage.input_tokens, price.input_per_mtok)
        + token_cost(usage.output_tokens, price.output_per_mtok)
        + token_cost(usage.cache_read_tokens, price.cache_read_per_mtok)
        + token_cost(usage.cache_write_tokens, price.cache_write_per_mtok)
    )


# --- the call record ----------------------------------------------------------------------------

_CALL_INSERT = """
    INSERT INTO {s}.llm_llmcall (request_id, status, crew_id, mission_id, agent_id, model, provider, route_reason,
        reservation_id, attempts, stop_reason, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
        cost_microusd, error, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, '', 0, 0, 0, 0, 0, %s, now(), now())
    ON CONFLICT (request_id) DO NOTHING RETURNING 1
"""
_CALL_UPDATE_ADMITTED = """
    UPDATE {s}.llm_llmcall SET status = %s, model = %s, provider = %s, route_reason = %s, reservation_id = %s,
        attempts = attempts + 1, error = %s, response = NULL, updated_at = now()
    WHERE request_id = %s RETURNING 1
"""
_CALL_COMPLETED = """
    UPDATE {s}.llm_llmcall SET status = 'completed', model = %s, provider = %s, stop_reason = %s, input_tokens = %s,
        output_tokens = %s, cache_read_tokens = %s, cache_write_tokens = %s, cost_microusd = %s, latency_ms = %s,
        response = %s::jsonb, reservation_id = %s, route_reason = %s, error = '', updated_at = now()
    WHERE request_id = %s RETURNING 1
"""
_CALL_FAILED = """
    UPDATE {s}.llm_llmcall SET status = %s, model = %s, error = %s, reservation_id = %s, updated_at = now()
    WHERE request_id = %s RETURNING 1
"""


def _call_sql(template: str) -> str:
    """A call-record statement qualified with the active schema (it runs on a raw cursor)."""
    return template.replace("{s}", budget_services._schema())


def _call_record(template: str, params: list[Any]) -> Companion:
    """The call record is written inside the budget statement: no round trip of its own."""
    return Companion(sql=_call_sql(template), params=params)


class _Duplicate(Exception):
    """The request id is already recorded; the fast path rolls back and takes the slow one."""


@dataclasses.dataclass
class _Admission:
    reservation: Reservation
    model: ResolvedModel
    route_reason: str
    on_disk: bool = False  # the reservation's commit is known to be flushed


@dataclasses.dataclass
class _Chosen:
    model: ResolvedModel | None = None
    reason: str = ""


def _call_entry(
    kind: str, payload: dict[str, Any], scopes: Scopes, request_id: str, context: CallContext | None = None
) -> NewEntry:
    """A journal entry about one call, under its scopes and request id (with the caller's
    stated purpose, for the routing entries that are given ``context``)."""
    if context is not None and context.purpose:
        payload["purpose"] = context.purpose[:200]
    return NewEntry(
        kind=kind,
        payload=payload,
        crew_id=scopes.crew_id,
        mission_id=scopes.mission_id,
        agent_id=scopes.agent_id,
        request_id=request_id,
    )


def _routing_entry(
    *,
    model: ResolvedModel,
    source: str,
    reason: str,
    scopes: Scopes,
    request_id: str,
    context: CallContext,
    **extra: Any,
) -> NewEntry:
    payload: dict[str, Any] = {
        "model": model.model_id,
        "source": source,
        "reason": reason,
        "provider": model.provider,
        "tier": model.tier,
        **{k: v for k, v in extra.items() if v is not None},
    }
    return _call_entry("routing.decided", payload, scopes, request_id, context)


def _charge_for(
    route: Route,
    request: ChatRequest,
    context: CallContext,
    scopes: Scopes,
    request_id: str,
    input_tokens: int,
    chosen: _Chosen,
) -> Any:
    def charge(states: tuple[BudgetState, ...] | Any) -> Charge:
        model, source, reason = route.model, route.source, route.reason
        extra: dict[str, Any] = {"skipped": list(route.skipped) or None}
        downgrade = downgrade_for(model=model, context=context, states=states)
        if downgrade is not None:
            extra.update(
                downgraded_from=model.model_id, rule_id=downgrade.rule.id, budget_id=downgrade.state.line.budget_id
            )
            model, source, reason = downgrade.model, "downgrade", f"{reason}; downgraded by {downgrade.reason}"
        chosen.model, chosen.reason = model, reason
        return Charge(
            amount_microusd=worst_case_microusd(model, request, input_tokens),
            pricing=pricing_of(model),
            input_tokens=input_tokens,
            max_tokens=effective_max_tokens(model, request),
            journal=[
                _routing_entry(
                    model=model,
                    source=source,
                    reason=reason,
                    scopes=scopes,
                    request_id=request_id,
                    context=context,
                    **extra,
                )
            ],
        )

    return charge


def _admit(
    request: ChatRequest,
    context: CallContext,
    route: Route,
    scopes: Scopes,
    request_id: str,
    input_tokens: int,
    own: bool,
) -> _Admission | ChatResponse:
    chosen = _Chosen()
    charge = _charge_for(route, request, context, scopes, request_id, input_tokens, chosen)

    def insert_record(reservation_id: uuid.UUID | None, exceeded: BudgetExceeded | None, _charge: Charge) -> Companion:
        return _call_record(_CALL_INSERT, _call_row(reservation_id, exceeded, chosen, scopes, request_id))

    # Fast path: a new request id. Reserve and record the call in one transaction (when the
    # gateway owns it, one statement: a record that already exists undoes the reservation).
    try:
        if own:
            durable = durable_reservations()
            outcome = budget_try_reserve(
                scopes=scopes,
                charge=charge,
                request_id=request_id,
                async_commit=True,
                companion=insert_record,
                companion_required=True,
                durable=durable,
            )
            if outcome.companion_rows == 0:
                raise _Duplicate  # ON CONFLICT DO NOTHING: the request id exists
            admission = _admitted_or_raise(outcome, chosen)
            admission.on_disk = durable
            return admission
        with transaction.atomic():
            outcome = budget_try_reserve(
                scopes=scopes, charge=charge, request_id=request_id, async_commit=False, companion=insert_record
            )
            if outcome.companion_rows == 0:
                raise _Duplicate  # rolls the reservation back with the caller's savepoint
        return _admitted_or_raise(outcome, chosen)
    except _Duplicate:
        pass
    # Slow path: this request id was seen before (a retry, or a resume after a crash).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, reservation_id, response FROM llm_llmcall WHERE request_id = %s FOR UPDATE", [request_id]
        )
        status, reservation_id, response = cursor.fetchone()
        if status == "completed" and response:
            data = json.loads(response) if isinstance(response, str) else response
            return ChatResponse.from_dict(data, replayed=True)
        if status == "reserved" and reservation_id:
            reservation = reservation_load(reservation_id=reservation_id)
            model = model_resolve(model_id=reservation.pricing.model) if reservation else None
            if reservation is not None and model is not None:
                cursor.execute(
                    "UPDATE llm_llmcall SET attempts = attempts + 1, updated_at = now() WHERE request_id = %s",
                    [request_id],
                )
                return _Admission(reservation=reservation, model=model, route_reason="resumed under its reservation")

        def update_record(
            reservation_id: uuid.UUID | None, exceeded: BudgetExceeded | None, _charge: Charge
        ) -> Companion:
            row = _call_row(reservation_id, exceeded, chosen, scopes, request_id)
            return _call_record(_CALL_UPDATE_ADMITTED, [row[1], row[5], row[6], row[7], row[8], row[9], request_id])

        outcome = budget_try_reserve(
            scopes=scopes, charge=charge, request_id=request_id, async_commit=own, companion=update_record
        )
    return _admitted_or_raise(outcome, chosen)


def _call_row(
    reservation_id: uuid.UUID | None, exceeded: BudgetExceeded | None, chosen: _Chosen, scopes: Scopes, request_id: str
) -> list[Any]:
    model = chosen.model
    blocked = exceeded is not None
    return [
        request_id,
        "blocked" if blocked else "reserved",
        scopes.crew_id,
        scopes.mission_id,
        scopes.agent_id,
        model.model_id if model else "",
        model.provider if model else "",
        chosen.reason,
        None if blocked else reservation_id,
        exceeded.message if exceeded is not None else "",
    ]


def _admitted_or_raise(outcome: ReserveOutcome, chosen: _Chosen) -> _Admission:
    if outcome.exceeded is not None:
        raise outcome.exceeded
    assert outcome.reservation is not None and chosen.model is not None
    return _Admission(reservation=outcome.reservation, model=chosen.model, route_reason=chosen.reason)


def _journal_no_route(refused: NoModelAvailable, context: CallContext, scopes: Scopes, request_id: str) -> None:
    """A call that no model could be chosen for is journaled too (nothing was reserved or sent)."""
    details = refused.details if isinstance(refused.details, dict) else {}
    payload: dict[str, Any] = {"reason": refused.message, "skipped": [str(s) for s in details.get("skipped", [])]}
    try:
        journal_append_many(entries=[_call_entry("routing.failed", payload, scopes, request_id, context)])
    except (QuarterdeckError, DatabaseError):
        # The call is refused either way; the caller hears why it was, not that the journal is down.
        logger.exception("could not journal the routing failure of request %s", request_id)


def _make_durable(own: bool) -> None:
    """The reservation is on disk before the call leaves (see apps.core.db)."""
    if own and durable_reservations():
        durability_barrier()


# --- provider calls -------------------------------------------------------------------------------


def _call_provider(model: ResolvedModel, request: ChatRequest) -> ProviderReply:
    """One provider call. Whatever goes wrong comes out as a ``ProviderError``, except that the
    credential store being unreachable comes out as the database's (or Quarterdeck's) error."""
    try:
        credential = resolve_credential(provider=model.provider, model=model)
    except (QuarterdeckError, DatabaseError):
        raise
    except Exception as exc:
        logger.exception("the credential resolver for %s raised", model.provider)
        raise ProviderError(
            f"the credential could not be resolved: {type(exc).__name__}", code="credential_error"
        ) from exc
    if credential is None:
        raise ProviderError(f"no credential for provider {model.provider!r}", code="provider_not_configured")
    provider = get_provider(model.provider)
    sized = (
        request
        if request.max_tokens <= model.max_output_tokens
        else dataclasses.replace(request, max_tokens=model.max_output_tokens)
    )
    try:
        return provider.chat(model=model, request=sized, credential=credential)
    except ProviderError:
        raise
    except Exception as exc:
        # A provider that broke its contract (a reply it could not read, a bug): the call did
        # not complete here, so it is not retried elsewhere either (it may have been billed).
        logger.exception("provider %s raised instead of answering", model.provider)
        raise ProviderError(
            f"the provider raised {type(exc).__name__}: {exc}"[:500], code="provider_exception", fallback_ok=False
        ) from exc


def _switch_to_fallback(
    *,
    reservation: Reservation,
    fallback: ResolvedModel,
    failed: ResolvedModel,
    error: ProviderError,
    request: ChatRequest,
    context: CallContext,
    scopes: Scopes,
    request_id: str,
    input_tokens: int,
    own: bool,
) -> Reservation:
    charge = Charge(
        amount_microusd=worst_case_microusd(fallback, request, input_tokens),
        pricing=pricing_of(fallback),
        input_tokens=input_tokens,
        max_tokens=effective_max_tokens(fallback, request),
        journal=[
            _routing_entry(
                model=fallback,
                source="fallback",
                reason=f"fallback from {failed.model_id} after {error.code}",
                scopes=scopes,
                request_id=request_id,
                context=context,
                fallback_from=failed.model_id,
                fallback_error=str(error)[:300],
            )
        ],
    )
    with transaction.atomic():
        outcome = budget_try_reserve(
            scopes=scopes, charge=charge, request_id=request_id, replaces=reservation, async_commit=own
        )
        if outcome.exceeded is None:
            assert outcome.reservation is not None
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE llm_llmcall SET model = %s, provider = %s, reservation_id = %s, updated_at = now() "
                    "WHERE request_id = %s",
                    [fallback.model_id, fallback.provider, outcome.reservation.id, request_id],
                )
    if outcome.exceeded is None:
        assert outcome.reservation is not None
        _make_durable(own)
        return outcome.reservation
    # The fallback does not fit the budget: give the original reservation back, then refuse.
    with transaction.atomic():
        budget_release(reservation=reservation, reason=f"fallback to {fallback.model_id} blocked by a budget")
        with connection.cursor() as cursor:
            cursor.execute(
                _call_sql(_CALL_FAILED), ["blocked", fallback.model_id, outcome.exceeded.message, None, request_id]
            )
    raise outcome.exceeded


def chat(*, request: ChatRequest, context: CallContext) -> ChatResponse:
    """Make one governed model call. See the module docstring for the contract."""
    started = time.perf_counter()
    request_id = (context.request_id or uuid.uuid4().hex)[:64]
    scopes = Scopes(crew_id=context.crew_id, mission_id=context.mission_id, agent_id=context.agent_id)
    input_tokens = estimate_input_tokens(request)
    # Our own transactions commit without waiting for the disk; a caller's is left alone.
    own = not connection.in_atomic_block
    try:
        try:
            route = route_for(request=request, context=context)
        except NoModelAvailable as refused:
            _journal_no_route(refused, context, scopes, request_id)
            raise
        admitted = _admit(request, context, route, scopes, request_id, input_tokens, own)
        if not isinstance(admitted, ChatResponse) and not admitted.on_disk:
            _make_durable(own)
    except QuarterdeckError:
        raise
    except DatabaseError as exc:
        # Fail closed: without a reservation nothing leaves the box.
        logger.exception("budget check failed for request %s; the call was not made", request_id)
        raise GovernanceUnavailable(
            "The budget could not be consulted; the model call was not made.", code="budget_unavailable"
        ) from exc
    if isinstance(admitted, ChatResponse):
        return admitted

    reservation, model = admitted.reservation, admitted.model
    route_reason = admitted.route_reason
    tried: list[str] = []
    errors: list[str] = []
    fallbacks = [m for m in model.fallbacks if m != model.model_id]
    provider_seconds = 0.0
    while True:
        tried.append(model.model_id)
        provider_started = time.perf_counter()
        try:
            reply = _call_provider(model, request)
        except ProviderError as error:
            provider_seconds += time.perf_counter() - provider_started
            errors.append(f"{model.model_id}: {error}"[:500])
            logger.warning("model call %s on %s failed: %s", request_id, model.model_id, error)
            fallback = None
            while error.fallback_ok and fallbacks and fallback is None:
                candidate = fallbacks.pop(0)
                if candidate not in tried:
                    fallback = model_resolve(model_id=candidate)
            if fallback is None:
                break
            try:
                reservation = _switch_to_fallback(
                    reservation=reservation,
                    fallback=fallback,
                    failed=model,
                    error=error,
                    request=request,
                    context=context,
                    scopes=scopes,
                    request_id=request_id,
                    input_tokens=input_tokens,
                    own=own,
                )
            except BudgetExceeded:
                raise
            except (QuarterdeckError, DatabaseError) as exc:
                _fail_quietly(reservation, tried, errors, request_id, scopes, own)
                raise GovernanceUnavailable(
                    "The budget could not be consulted for a fallback; no further call was made.",
                    code="budget_unavailable",
                ) from exc
            route_reason = f"fallback from {model.model_id} after {error.code}"
            model = fallback
            continue
        except (QuarterdeckError, DatabaseError) as exc:
            # The credential could not be fetched (the vault is down, or refused): nothing left
            # the box, so the reservation is given back and the call fails closed.
            errors.append(f"{model.model_id}: {exc}"[:500])
            _fail_quietly(reservation, tried, errors, request_id, scopes, own)
            if isinstance(exc, QuarterdeckError):
                raise
            logger.exception("the credential for %s could not be fetched; the call was not made", model.model_id)
            raise GovernanceUnavailable(
                "The provider's credential could not be fetched; the model call was not made.",
                code="credentials_unavailable",
            ) from exc
        provider_seconds += time.perf_counter() - provider_started
        return _complete(
            reply=reply,
            model=model,
            reservation=reservation,
            request_id=request_id,
            scopes=scopes,
            route_reason=route_reason,
            attempts=len(tried),
            started=started,
            provider_seconds=provider_seconds,
            own=own,
        )
    released = _fail(reservation, tried, errors, request_id, scopes, own)
    raise ProviderFailed(
        f"The model call failed on {', '.join(tried)}: {errors[-1] if errors else 'unknown error'}",
        details={"models": tried, "errors": errors, "released_microusd": released},
    )


def _complete(
    *,
    reply: ProviderReply,
    model: ResolvedModel,
    reservation: Reservation,
    request_id: str,
    scopes: Scopes,
    route_reason: str,
    attempts: int,
    started: float,
    provider_seconds: float,
    own: bool,
) -> ChatResponse:
    cost = cost_microusd(model, reply.usage)
    response = ChatResponse(
        content=reply.content,
        stop_reason=reply.stop_reason,
        usage=reply.usage,
        model=model.model_id,
        provider=model.provider,
        cost_microusd=cost,
        request_id=request_id,
        route_reason=route_reason,
        price_id=model.price.id,
    )
    usage = reply.usage
    tool_calls = [b.name for b in reply.content if isinstance(b, ToolUseBlock)]
    latency_ms = int((time.perf_counter() - started) * 1000)
    record = _call_record(
        _CALL_COMPLETED,
        [
            model.model_id,
            model.provider,
            reply.stop_reason[:20],
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            cost,
            latency_ms,
            json.dumps(response.to_dict()),
            reservation.id,
            route_reason,
            request_id,
        ],
    )
    try:
        budget_settle(
            async_commit=own and not durable_settlements(),
            companion=record,
            reservation=reservation,
            amount_microusd=cost,
            tokens=Tokens(
                input=usage.input_tokens,
                output=usage.output_tokens,
                cache_read=usage.cache_read_tokens,
                cache_write=usage.cache_write_tokens,
            ),
            pricing=pricing_of(model),
            journal=[
                _call_entry(
                    "llm.completed",
                    {
                        "model": model.model_id,
                        "provider": model.provider,
                        "stop_reason": reply.stop_reason,
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "cache_read_tokens": usage.cache_read_tokens,
                        "cache_write_tokens": usage.cache_write_tokens,
                        "cost_microusd": cost,
                        "latency_ms": latency_ms,
                        "tool_calls": tool_calls,
                        "attempts": attempts,
                        "price_id": model.price.id,
                    },
                    scopes,
                    request_id,
                )
            ],
        )
    except Conflict:
        # Another attempt with the same request id settled first: return what it recorded.
        with connection.cursor() as cursor:
            cursor.execute("SELECT response FROM llm_llmcall WHERE request_id = %s", [request_id])
            row = cursor.fetchone()
        if row and row[0]:
            data = json.loads(row[0]) if isinstance(row[0], str) else row[0]
            return ChatResponse.from_dict(data, replayed=True)
        raise
    except DatabaseError as exc:
        logger.exception("settling request %s failed; its reservation stays held until swept", request_id)
        raise GovernanceUnavailable(
            "The call's cost could not be recorded; retry with the same request id.", code="budget_unavailable"
        ) from exc
    return dataclasses.replace(
        response,
        latency_ms=(time.perf_counter() - started) * 1000,
        provider_ms=provider_seconds * 1000,
    )


def _fail(
    reservation: Reservation, tried: list[str], errors: list[str], request_id: str, scopes: Scopes, own: bool
) -> int:
    budget_release(
        async_commit=own and not durable_settlements(),
        companion=_call_record(
            _CALL_FAILED, ["failed", tried[-1] if tried else "", "\n".join(errors)[:4000], None, request_id]
        ),
        reservation=reservation,
        reason="the provider call failed",
        journal=[
            _call_entry(
                "llm.failed",
                {"models": tried, "errors": errors, "released_microusd": reservation.amount_microusd},
                scopes,
                request_id,
            )
        ],
    )
    return reservation.amount_microusd


def _fail_quietly(
    reservation: Reservation, tried: list[str], errors: list[str], request_id: str, scopes: Scopes, own: bool
) -> None:
    try:
        _fail(reservation, tried, errors, request_id, scopes, own)
    except Exception:
        logger.exception("could not release reservation %s; the sweep will settle it", reservation.id)
