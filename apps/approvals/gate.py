"""The seam between the runtime and approvals: everything ``apps.crews`` calls lives here.

The runtime's tool node calls ``gate(...)`` before running a tool::

    decision = gate(tool_name=..., arguments=..., tool_call_id=..., has_side_effects=...,
                    estimated_cost_microusd=..., crew_id=..., agent_id=..., mission_id=...,
                    autonomy_level=crew.autonomy, started_by_user_id=mission.created_by_user_id,
                    reasoning=..., diff=preview, crew_name=..., agent_name=..., mission_goal=...,
                    mission_cost_microusd=mission.cost_micros)

- ``allow``: run the tool;  ``deny``: do not run it, tell the model ``decision.reason``;
- ``wait``: sync approval; interrupt the graph and resume when the request is resolved;
- ``queue``: async approval; tell the model the call awaits review and go on; run the call
  once ``request_outcome`` says approved.

``gate`` is idempotent per (mission_id, tool_call_id): asking again (the node re-runs from its
top after ``Command(resume=...)`` or after a crash) returns the same decision and the same
request, never a second one, even if a policy changed in between.

When a request is resolved (decision, timeout, cancellation), the resolving transaction sends
``pg_notify('quarterdeck_wake', {"schema", "mission_id", "approval_request_id", "tool_call_id",
"status", "mode"})``, delivered at commit: LISTEN on ``WAKE_CHANNEL`` and resume at once. The
payload names the one mission and request concerned, so a worker need not re-check every
waiting mission (``request_outcomes`` answers many in one query when it must).

Call everything here with the workspace's schema active. Governance fails closed: an
unexpected error raises ``GovernanceUnavailable`` and the tool must not run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from apps.core.errors import GovernanceUnavailable, NotFound, QuarterdeckError, ValidationFailed

from . import services
from .matching import GateAction, ToolCall
from .models import ApprovalRequest, GateVerdict, RequestStatus, Resolution
from .push import WAKE_CHANNEL
from .services import SweepReport

__all__ = [
    "WAKE_CHANNEL",
    "GateDecision",
    "Outcome",
    "SweepReport",
    "cancel_mission_requests",
    "gate",
    "mark_executed",
    "mission_outcomes",
    "request_outcome",
    "request_outcomes",
    "sweep_timeouts",
]


@dataclass(frozen=True)
class GateDecision:
    action: GateAction  # "allow" | "deny" | "wait" | "queue"
    reason: str  # why, in words (for the model on deny, for the journal always)
    policy_id: uuid.UUID | None  # the policy that matched; None for the autonomy default
    policy_name: str
    approval_request_id: uuid.UUID | None  # set for wait and queue
    source: Literal["policy", "autonomy"]

    @property
    def runs_now(self) -> bool:
        return self.action == "allow"


OutcomeStatus = Literal["pending", "approved", "denied"]


@dataclass(frozen=True)
class Outcome:
    """Where a request stands, in the terms the runtime acts on.

    ``status`` is pending, approved (run the tool with ``arguments``, which a reviewer may have
    edited: ``edited``) or denied (do not run it; tell the model ``message``). A timeout is
    ``timed_out=True`` with the timeout action's status; a cancelled request is denied with
    ``cancelled=True``.
    """

    request_id: uuid.UUID
    mission_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    mode: Literal["sync", "async"]
    status: OutcomeStatus
    arguments: dict[str, Any]
    original_arguments: dict[str, Any]
    edited: bool
    comment: str
    decided_by: str
    decided_at: datetime | None
    timed_out: bool = False
    cancelled: bool = False
    executed: bool = False
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        return self.status != "pending"

    def as_resume(self) -> dict[str, Any]:
        """A JSON-safe form for ``Command(resume=...)`` and checkpoints."""
        return {
            "request_id": str(self.request_id),
            "status": self.status,
            "arguments": self.arguments,
            "edited": self.edited,
            "comment": self.comment,
            "decided_by": self.decided_by,
            "timed_out": self.timed_out,
            "cancelled": self.cancelled,
            "message": self.message,
        }


def _uuid(value: Any, name: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(f"{name} must be a UUID.", details={name: [str(value)]}) from None


def _decision(verdict: GateVerdict) -> GateDecision:
    return GateDecision(
        action=verdict.action,  # type: ignore[arg-type]
        reason=verdict.reason,
        policy_id=verdict.policy_id,
        policy_name=verdict.policy_name,
        approval_request_id=verdict.request_id,  # type: ignore[arg-type]
        source="policy" if verdict.source == "policy" else "autonomy",
    )


def gate(
    *,
    tool_name: str,
    arguments: dict[str, Any],
    tool_call_id: str,
    has_side_effects: bool,
    estimated_cost_microusd: int,
    crew_id: uuid.UUID | str,
    agent_id: uuid.UUID | str,
    mission_id: uuid.UUID | str,
    autonomy_level: str,
    started_by_user_id: int | None = None,
    reasoning: str = "",
    diff: dict[str, Any] | list[Any] | None = None,
    crew_name: str = "",
    agent_name: str = "",
    mission_goal: str = "",
    mission_cost_microusd: int = 0,
) -> GateDecision:
    """May this tool call run? See the module docstring."""
    if not isinstance(arguments, dict):
        raise ValidationFailed(details={"arguments": ["The arguments are a JSON object."]})
    if not tool_call_id or len(tool_call_id) > 200:
        raise ValidationFailed(details={"tool_call_id": ["A tool call id of 1-200 characters."]})
    if not tool_name or len(tool_name) > 200:
        raise ValidationFailed(details={"tool_name": ["A tool name of 1-200 characters."]})
    call = ToolCall(
        tool_name=tool_name,
        arguments=arguments,
        has_side_effects=bool(has_side_effects),
        estimated_cost_microusd=max(0, int(estimated_cost_microusd or 0)),
        crew_id=_uuid(crew_id, "crew_id"),
        agent_id=_uuid(agent_id, "agent_id"),
        autonomy_level=autonomy_level,
    )
    display = services.Display(
        crew_name=crew_name,
        agent_name=agent_name,
        mission_goal=mission_goal,
        mission_cost_microusd=max(0, int(mission_cost_microusd or 0)),
        reasoning=reasoning or "",
        diff=diff,
    )
    try:
        verdict = services.verdict_record(
            call=call,
            mission_id=_uuid(mission_id, "mission_id"),
            tool_call_id=tool_call_id,
            started_by_user_id=started_by_user_id,
            display=display,
        )
    except QuarterdeckError:
        raise
    except Exception as exc:
        raise GovernanceUnavailable("The approval gate could not decide; the tool was not run.") from exc
    return _decision(verdict)


def _outcome(request: ApprovalRequest, *, with_history: bool = False) -> Outcome:
    if request.status == RequestStatus.PENDING:
        status: OutcomeStatus = "pending"
    elif request.status == RequestStatus.APPROVED:
        status = "approved"
    else:
        status = "denied"
    timed_out = request.resolution == Resolution.TIMEOUT
    cancelled = request.status == RequestStatus.CANCELLED
    if status == "pending":
        message = f"{request.tool_name} is waiting for approval."
    elif cancelled:
        message = f"The request to run {request.tool_name} was cancelled: {request.decision_comment}"
    elif timed_out:
        message = f"No reviewer decided on {request.tool_name} in time; it was {status} by the timeout action."
    elif status == "approved":
        message = f"{request.decided_by_label} approved {request.tool_name}" + (
            " with edited arguments." if request.was_edited else "."
        )
    else:
        message = f"{request.decided_by_label} denied {request.tool_name}."
    if request.decision_comment and not cancelled and not timed_out:
        message += f" Reviewer's comment: {request.decision_comment}"
    history = []
    if with_history:
        history = [
            {"kind": e.kind, "by": e.actor_label, "comment": e.comment, "at": e.created_at.isoformat()}
            for e in request.events.all()
        ]
    return Outcome(
        request_id=request.pk,
        mission_id=request.mission_id,
        tool_call_id=request.tool_call_id,
        tool_name=request.tool_name,
        mode="sync" if request.mode == "sync" else "async",
        status=status,
        arguments=request.final_arguments,
        original_arguments=request.arguments,
        edited=request.was_edited,
        comment=request.decision_comment,
        decided_by=request.decided_by_label,
        decided_at=request.decided_at,
        timed_out=timed_out,
        cancelled=cancelled,
        executed=request.executed_at is not None,
        message=message,
        history=history,
    )


def request_outcome(request_id: uuid.UUID | str, *, with_history: bool = False) -> Outcome:
    """Where request ``request_id`` stands (pending / approved / denied, with the details)."""
    request = ApprovalRequest.objects.filter(pk=_uuid(request_id, "request_id")).first()
    if request is None:
        raise NotFound("No such approval request.")
    return _outcome(request, with_history=with_history)


def request_outcomes(request_ids: Iterable[uuid.UUID | str]) -> dict[str, Outcome]:
    """Several requests' outcomes in one query, keyed by the request id as a string: for a
    worker resolving all its waiting missions at once instead of one query per mission.
    Unknown ids are left out."""
    keys = []
    for value in request_ids:
        try:
            keys.append(_uuid(value, "request_id"))
        except ValidationFailed:
            continue
    return {str(request.pk): _outcome(request) for request in ApprovalRequest.objects.filter(pk__in=keys)}


def mission_outcomes(
    mission_id: uuid.UUID | str, *, mode: Literal["sync", "async"] | None = None, unexecuted: bool = False
) -> list[Outcome]:
    """A mission's requests, oldest first; e.g. approved async calls not yet run:
    ``[o for o in mission_outcomes(m, mode="async", unexecuted=True) if o.status == "approved"]``."""
    queryset = ApprovalRequest.objects.filter(mission_id=_uuid(mission_id, "mission_id")).order_by("created_at")
    if mode is not None:
        queryset = queryset.filter(mode=mode)
    if unexecuted:
        queryset = queryset.filter(executed_at__isnull=True)
    return [_outcome(request) for request in queryset]


def mark_executed(request_id: uuid.UUID | str, *, ok: bool, detail: str = "") -> bool:
    """Record that an approved call ran; False if it was already recorded (a once-only claim)."""
    return services.request_mark_executed(request_id=request_id, ok=ok, detail=detail)


def cancel_mission_requests(mission_id: uuid.UUID | str, *, reason: str = "mission cancelled") -> int:
    """Cancel a finished or cancelled mission's pending requests (they leave the inbox)."""
    return services.requests_cancel_for_mission(mission_id=_uuid(mission_id, "mission_id"), reason=reason)


def sweep_timeouts(*, now: datetime | None = None) -> SweepReport:
    """Apply timeouts in every workspace (the worker calls this; so does ``approvals_sweep``).
    ``report.next_deadline`` says when the next one falls due, to sleep until then."""
    return services.requests_sweep_all(now=now)
