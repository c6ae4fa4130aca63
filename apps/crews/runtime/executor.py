"""One tool call through the governance path: validate → gate → credentials → run → journal.

The tool node may run this again for the same call (after an interrupt: LangGraph re-runs the
interrupted node from its top; after a crash: from the last checkpoint). Everything before a
tool runs is idempotent, keyed by (mission, tool_call_id) in ``ToolCall``, and the record is
consulted first: a call that finished returns its recorded outcome, and a side-effecting call
whose earlier attempt was cut off mid-run is never run again (its outcome is unknown; the
model is told so).

Journal writes are few and short, because a workspace's journal takes one writer at a time:
the call is recorded (``tool.called``) in the same transaction as the governance outcome or
the "running" mark, and its result (``tool.executed``/``tool.failed``) is written with the
step's own records when the tool node asks for it (``Outcome.pending``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from langgraph.types import interrupt

from apps.audit.services import journal_append
from apps.core.errors import QuarterdeckError

from ..models import Agent, Mission, ToolCall, ToolCallStatus
from ..tools import ToolContext, ToolError, ToolSpec, get_tool
from . import governance

MAX_RESULT_CHARS = 20_000


@dataclass(frozen=True)
class Outcome:
    content: str  # what the model reads
    is_error: bool
    handoff_agent_id: str | None = None
    status: str = ""
    # Writes the call's result (record and journal); the caller runs it inside its own
    # transaction (the step's). None when everything is written already.
    pending: Callable[[], None] | None = None


def _dump(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "… [truncated]"


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def outcome_of(record: ToolCall, pending: Callable[[], None] | None = None) -> Outcome:
    """What the model is told about a call, from its record."""
    if record.status == ToolCallStatus.SUCCEEDED:
        result = record.result or {}
        handoff = result.get("agent_id") if record.tool == "handoff" else None
        return Outcome(_dump(result), False, handoff_agent_id=handoff, status=record.status, pending=pending)
    if record.status == ToolCallStatus.QUEUED:
        return Outcome(
            f"This call awaits review (approval request {record.approval_request_id}); it has not run. "
            "Carry on without its result; you will be told the outcome.",
            False,
            status=record.status,
        )
    message = record.error or f"The call ended as {record.status}."
    return Outcome(message, True, status=record.status, pending=pending)


def _journal(kind: str, record: ToolCall, step: int, **payload: Any) -> None:
    journal_append(
        kind=kind,
        payload={
            "tool_call_id": record.tool_call_id,
            "tool_name": record.tool,
            "arguments": record.effective_arguments,
            "step": step,
            **payload,
        },
        crew_id=record.mission.crew_id,
        mission_id=record.mission_id,
        agent_id=record.agent_id,
    )


def _ensure(mission: Mission, agent: Agent, call: dict[str, Any], step: int) -> ToolCall:
    """The call's record, locked; created (and ``tool.called`` journaled) the first time.
    Call inside a transaction; the journal entry goes last in it."""
    spec = get_tool(call["name"])
    arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
    record, created = ToolCall.objects.select_for_update().get_or_create(
        mission=mission,
        tool_call_id=call["id"],
        defaults={
            "agent": agent,
            "tool": call["name"][:100],
            "arguments": _json_safe(arguments),
            "side_effects": bool(spec and spec.side_effects),
        },
    )
    record.mission = mission
    if created:
        Mission.objects.filter(pk=mission.pk).update(tool_calls=F("tool_calls") + 1)
        record._created_now = True  # type: ignore[attr-defined]
    return record


def _called(record: ToolCall, step: int) -> None:
    if getattr(record, "_created_now", False):
        _journal("tool.called", record, step, side_effects=record.side_effects)
        record._created_now = False  # type: ignore[attr-defined]


def _finish(
    record: ToolCall,
    status: str,
    step: int,
    *,
    result: Any = None,
    error: str = "",
    duration_ms: int = 0,
    late: bool = False,
    outcome: str = "error",
) -> ToolCall:
    """Write the call's end: its record, then its journal entry. Call inside a transaction."""
    record.status = status
    record.finished_at = timezone.now()
    extra: dict[str, Any] = {"late": True} if late else {}
    if status == ToolCallStatus.SUCCEEDED:
        record.result = result
        record.save(update_fields=["status", "finished_at", "result", "approved_arguments"])
        if record.approved_arguments is not None:
            extra["edited"] = True
        _called(record, step)
        _journal("tool.executed", record, step, result=result, duration_ms=duration_ms, **extra)
        return record
    record.error = error[:10_000]
    record.save(update_fields=["status", "finished_at", "error"])
    if status == ToolCallStatus.INVALID:
        outcome = "rejected"
    elif status == ToolCallStatus.DENIED:
        outcome = "denied"
    if duration_ms:
        extra["duration_ms"] = duration_ms
    _called(record, step)
    _journal("tool.failed", record, step, error=record.error, outcome=outcome, **extra)
    return record


def _end_now(
    mission: Mission, agent: Agent, call: dict[str, Any], step: int, status: str, error: str, **kwargs: Any
) -> Outcome:
    """Record a call that ends without running (invalid, denied, interrupted), in one transaction."""
    with transaction.atomic():
        record = _ensure(mission, agent, call, step)
        if record.is_terminal:
            return outcome_of(record)
        _finish(record, status, step, error=error, **kwargs)
    return outcome_of(record)


def _context(
    mission: Mission, agent: Agent | None, tool_call_id: str, workspace: Any, credentials: Any = None
) -> ToolContext:
    return ToolContext(
        workspace=workspace,
        crew=mission.crew,
        mission=mission,
        agent=agent,
        tool_call_id=tool_call_id,
        credentials=credentials or {},
    )


def handle_tool_call(
    *, workspace: Any, mission: Mission, agent: Agent, call: dict[str, Any], step: int, reasoning: str = ""
) -> Outcome:
    """Govern and run one tool call; the returned ``Outcome.pending`` (if any) must be run in
    the caller's transaction to record the result."""
    existing = ToolCall.objects.filter(mission=mission, tool_call_id=call["id"]).first()
    if existing is not None:
        existing.mission = mission
        if existing.is_terminal or existing.status == ToolCallStatus.QUEUED:
            return outcome_of(existing)

    name = str(call.get("name", ""))
    spec = get_tool(name) if name in (agent.tools or []) else None
    if spec is None:
        known = ", ".join(agent.tools or []) or "none"
        reason = f"Unknown tool {name!r}." if get_tool(name) is None else f"The tool {name!r} is not one of yours."
        return _end_now(
            mission, agent, call, step, ToolCallStatus.INVALID, f"{reason} Your tools: {known}. Nothing was run."
        )
    errors = spec.validation_errors(call.get("arguments"))
    if errors:
        message = "The arguments do not match the tool's schema; nothing was run. " + "; ".join(errors)
        return _end_now(mission, agent, call, step, ToolCallStatus.INVALID, message)

    if existing is not None and existing.status == ToolCallStatus.RUNNING and spec.side_effects:
        return _end_now(
            mission,
            agent,
            call,
            step,
            ToolCallStatus.FAILED,
            "The previous attempt of this call was interrupted while it ran; its outcome is unknown, and it is "
            "not run again to avoid doing it twice. Check before retrying it as a new call.",
            outcome="interrupted",
        )

    arguments = dict(existing.effective_arguments) if existing is not None else dict(call["arguments"])
    ctx = _context(mission, agent, call["id"], workspace)
    diff: Any = None
    if spec.stage is not None:
        try:
            diff = spec.stage(arguments, ctx)
        except ToolError as exc:
            return _end_now(mission, agent, call, step, ToolCallStatus.FAILED, str(exc))

    verdict = governance.gate_tool_call(
        governance.GateCall(
            mission_id=mission.pk,
            crew_id=mission.crew_id,
            agent_id=agent.pk,
            tool_call_id=call["id"],
            tool=spec,
            arguments=arguments,
            autonomy=mission.crew.autonomy,
            crew_name=mission.crew.name,
            agent_name=agent.name,
            mission_goal=mission.goal,
            mission_cost_microusd=mission.cost_micros,
            started_by_user_id=mission.created_by_user_id,
            reasoning=reasoning,
            diff=diff,
        )
    )
    if verdict.action == "deny":
        if spec.discard is not None:
            spec.discard(ctx)
        return _end_now(
            mission, agent, call, step, ToolCallStatus.DENIED, verdict.reason or "A policy denies this call."
        )
    if verdict.action == "queue":
        with transaction.atomic():
            record = _ensure(mission, agent, call, step)
            if record.status != ToolCallStatus.QUEUED and not record.is_terminal:
                record.status = ToolCallStatus.QUEUED
                record.approval_request_id = verdict.request_id
                record.queued = True
                record.save(update_fields=["status", "approval_request_id", "queued"])
                _called(record, step)
                _journal("tool.queued", record, step, approval_request_id=verdict.request_id)
        return outcome_of(record)
    if verdict.action == "wait":
        with transaction.atomic():
            record = _ensure(mission, agent, call, step)
            if record.status != ToolCallStatus.WAITING:
                record.status = ToolCallStatus.WAITING
                record.approval_request_id = verdict.request_id
                record.save(update_fields=["status", "approval_request_id"])
                _called(record, step)
                _journal_waiting(mission, agent, record, step, verdict.request_id)
        # Raises the first time (the worker marks the mission waiting); returns the decision
        # the worker resumes us with. Everything above is idempotent for this second pass.
        decision = governance.Decision.from_value(_await(record, verdict.request_id))
        record.decision = decision.as_dict()
        record.save(update_fields=["decision"])
        if not decision.approved:
            if spec.discard is not None:
                spec.discard(ctx)
            reason = "A reviewer denied this call" + (f": {decision.comment}" if decision.comment else ".")
            return _end_now(mission, agent, call, step, ToolCallStatus.DENIED, reason)
        if decision.arguments is not None and decision.arguments != arguments:
            problems = spec.validation_errors(decision.arguments)
            if problems:
                return _end_now(
                    mission,
                    agent,
                    call,
                    step,
                    ToolCallStatus.DENIED,
                    "The edited arguments are invalid: " + "; ".join(problems),
                )
            record.approved_arguments = _json_safe(decision.arguments)
            record.save(update_fields=["approved_arguments"])
            if spec.stage is not None:
                spec.stage(dict(decision.arguments), ctx)
    return execute(workspace=workspace, mission=mission, agent=agent, call=call, spec=spec, step=step, defer=True)


def execute(
    *,
    workspace: Any,
    mission: Mission,
    agent: Agent | None,
    call: dict[str, Any],
    spec: ToolSpec,
    step: int,
    late: bool = False,
    defer: bool = False,
) -> Outcome:
    """Run an allowed call at most once: mark it running (committed) before the tool runs.

    ``defer``: return the result's writes as ``Outcome.pending`` for the caller's transaction.
    """
    with transaction.atomic():
        if agent is not None:
            record = _ensure(mission, agent, call, step)
        else:  # a late (queued) call whose agent is gone: its record exists
            record = ToolCall.objects.select_for_update().get(mission=mission, tool_call_id=call["id"])
            record.mission = mission
        if record.is_terminal:
            return outcome_of(record)
        if record.status == ToolCallStatus.RUNNING and spec.side_effects:
            _finish(
                record,
                ToolCallStatus.FAILED,
                step,
                error="The previous attempt was interrupted while it ran; not run again.",
                late=late,
                outcome="interrupted",
            )
            return outcome_of(record)
        record.status = ToolCallStatus.RUNNING
        record.started_at = timezone.now()
        record.save(update_fields=["status", "started_at"])
        _called(record, step)
    arguments = dict(record.effective_arguments)
    secrets = governance.CallSecrets(
        crew_id=mission.crew_id, agent_id=agent.pk if agent else None, mission_id=mission.pk, tool_name=spec.name
    )
    started = time.perf_counter()
    error = ""
    result: Any = None
    pending: governance.CredentialPending | None = None
    try:
        credentials = secrets.fetch(
            spec.needed_credentials(arguments), intent=f"{spec.name} for mission: {mission.goal[:200]}"
        )
        result = _json_safe(spec.run(arguments, _context(mission, agent, record.tool_call_id, workspace, credentials)))
        if not isinstance(result, dict):
            result = {"result": result}
        result = secrets.scrub(result)
    except governance.CredentialPending as exc:
        pending = exc
        error = str(exc)
    except (ToolError, governance.CredentialUnavailable) as exc:
        error = str(secrets.scrub(str(exc))) or "The tool failed."
    except QuarterdeckError:
        raise
    except Exception as exc:
        error = str(secrets.scrub(f"The tool failed: {type(exc).__name__}: {exc}"))
    # A queued call settled outside the graph (late) cannot wait: it fails like any refusal.
    if pending is not None and agent is not None and not late:
        _wait_for_credential(mission, agent, record, step, pending.reference)
        # Interrupts the graph. Resumed, the node runs again from its start and this call asks
        # the Keeper again, which then answers from the decided request.
        _await(record, pending.reference)
    duration_ms = int((time.perf_counter() - started) * 1000)
    status = ToolCallStatus.FAILED if error else ToolCallStatus.SUCCEEDED

    def write() -> None:
        _finish(record, status, step, result=result, error=error, duration_ms=duration_ms, late=late)
        if record.approval_request_id:
            request_id = record.approval_request_id
            transaction.on_commit(lambda: governance.mark_executed(request_id=request_id, ok=not error, detail=error))

    # The model's view of the result, as the record will hold it.
    preview = ToolCall(tool=record.tool, status=status, result=result, error=error[:10_000])
    if defer:
        return outcome_of(preview, pending=write)
    with transaction.atomic():
        write()
    return outcome_of(record)


def _wait_for_credential(mission: Mission, agent: Agent, record: ToolCall, step: int, reference: str) -> None:
    """Nothing ran (the credential was not handed out): the call waits for the person who
    decides the credential's approval request, as it would for an approval gate."""
    with transaction.atomic():
        record.status = ToolCallStatus.WAITING
        record.started_at = None
        record.save(update_fields=["status", "started_at"])
        _journal_waiting(mission, agent, record, step, reference, reason="credential")


def _journal_waiting(
    mission: Mission, agent: Agent, record: ToolCall, step: int, request_id: str, **extra: Any
) -> None:
    journal_append(
        kind="mission.waiting",
        payload={
            "tool_call_id": record.tool_call_id,
            "tool_name": record.tool,
            "approval_request_id": request_id,
            "step": step,
            **extra,
        },
        crew_id=mission.crew_id,
        mission_id=mission.pk,
        agent_id=agent.pk,
    )


def _await(record: ToolCall, request_id: str) -> Any:
    """Interrupt the graph until ``request_id`` is decided; resumed, the decision."""
    return interrupt({"approval_request_id": request_id, "tool_call_id": record.tool_call_id})


def settle_queued_call(*, workspace: Any, record: ToolCall) -> bool:
    """Run (or drop) a queued call once its review is decided. True when it was settled."""
    decision = governance.approval_decision(record.approval_request_id)
    if decision is None:
        return False
    mission = Mission.objects.select_related("crew").get(pk=record.mission_id)
    agent = Agent.objects.filter(pk=record.agent_id).first() if record.agent_id else None
    spec = get_tool(record.tool)
    step = mission.steps
    with transaction.atomic():
        locked = ToolCall.objects.select_for_update().get(pk=record.pk)
        if locked.status != ToolCallStatus.QUEUED:
            return False
        # Stays QUEUED until execute() marks it RUNNING: a crash in between settles it again.
        locked.decision = decision.as_dict()
        if decision.approved and decision.arguments is not None:
            locked.approved_arguments = _json_safe(decision.arguments)
        locked.save(update_fields=["decision", "approved_arguments"])
    locked.mission = mission
    ctx = _context(mission, agent, locked.tool_call_id, workspace)
    problem = ""
    if spec is None:
        problem = f"The tool {record.tool!r} is no longer available."
    elif not decision.approved:
        problem = "A reviewer denied this call" + (f": {decision.comment}" if decision.comment else ".")
        if spec.discard is not None:
            spec.discard(ctx)
    elif locked.approved_arguments is not None and spec.validation_errors(locked.approved_arguments):
        problem = "The edited arguments are invalid."
    if problem or spec is None:
        with transaction.atomic():
            _finish(locked, ToolCallStatus.DENIED, step, error=problem, late=True)
        return True
    if spec.stage is not None and locked.approved_arguments is not None:
        spec.stage(dict(locked.approved_arguments), ctx)
    call = {"id": locked.tool_call_id, "name": locked.tool, "arguments": locked.arguments}
    execute(workspace=workspace, mission=mission, agent=agent, call=call, spec=spec, step=step, late=True)
    return True
