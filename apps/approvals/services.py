"""Writes of the approvals app: policies, gate verdicts, requests, decisions, timeouts.

Every change is journaled in its own transaction. Requests are locked (``select_for_update``)
before they change, so two reviewers, a reviewer and the sweep, or two sweeping workers never
resolve the same request twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection as _connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from apps.audit.services import journal_append
from apps.core.context import SYSTEM, Actor, current_actor
from apps.core.errors import Conflict, GovernanceUnavailable, NotFound, PermissionDenied, ValidationFailed
from apps.core.permissions import role_allows
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from . import push, registry
from .matching import Evaluation, ToolCall, evaluate
from .models import (
    ApprovalEvent,
    ApprovalRequest,
    EventKind,
    GateVerdict,
    Policy,
    RequestMode,
    RequestStatus,
    Resolution,
    TimeoutAction,
)

logger = logging.getLogger(__name__)

connection: Any = _connection  # django-tenants adds schema_name/tenant; the stubs do not know.

POLICY_FIELDS = (
    "name",
    "description",
    "enabled",
    "priority",
    "tool_pattern",
    "conditions",
    "min_estimated_cost_microusd",
    "side_effects_only",
    "crew_ids",
    "agent_ids",
    "action",
    "approver_roles",
    "approver_user_ids",
    "required_approvals",
    "segregation_of_duties",
    "timeout_seconds",
    "timeout_action",
    "escalate_to_roles",
    "escalation_timeout_seconds",
    "escalation_timeout_action",
)


# --- the workspace ------------------------------------------------------------------------


def current_workspace() -> Workspace:
    """The workspace whose schema is active (a request, a worker step, a consumer thread)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Workspace):
        return tenant
    schema = getattr(connection, "schema_name", get_public_schema_name())
    if schema == get_public_schema_name():
        raise GovernanceUnavailable("Approvals are per workspace: activate a workspace schema first.")
    workspace = Workspace.objects.filter(schema_name=schema).first()
    if workspace is None:
        raise GovernanceUnavailable(f"No workspace owns schema {schema!r}.")
    return workspace


def _invalid(exc: ValidationError) -> ValidationFailed:
    details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    return ValidationFailed(details=details)


# --- policies -------------------------------------------------------------------------------


def policy_as_dict(policy: Policy) -> dict[str, Any]:
    data = {name: getattr(policy, name) for name in POLICY_FIELDS}
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(POLICY_FIELDS))
    if unknown:
        raise ValidationFailed(details={name: ["Unknown field."] for name in unknown})


@transaction.atomic
def policy_create(*, fields: Mapping[str, Any]) -> Policy:
    _check_fields(fields)
    policy = Policy(**fields)
    try:
        policy.full_clean()
    except ValidationError as exc:
        raise _invalid(exc) from exc
    policy.updated_by = current_actor().label[:150]
    policy.save()
    journal_append(
        kind="policy.created",
        payload={
            "policy_id": str(policy.pk),
            "name": policy.name,
            "version": policy.version,
            "policy": policy_as_dict(policy),
        },
    )
    return policy


@transaction.atomic
def policy_update(*, policy: Policy, fields: Mapping[str, Any]) -> Policy:
    _check_fields(fields)
    # Lock: two editors must not both read version N and both write N+1.
    locked = Policy.objects.select_for_update().get(pk=policy.pk)
    before = policy_as_dict(locked)
    for name, value in fields.items():
        setattr(locked, name, value)
    try:
        locked.full_clean()
    except ValidationError as exc:
        raise _invalid(exc) from exc
    after = policy_as_dict(locked)
    changes = {name: [before[name], after[name]] for name in POLICY_FIELDS if before[name] != after[name]}
    if not changes:
        return locked
    locked.version += 1
    locked.updated_by = current_actor().label[:150]
    locked.save()
    journal_append(
        kind="policy.updated",
        payload={"policy_id": str(locked.pk), "name": locked.name, "version": locked.version, "changes": changes},
    )
    return locked


@transaction.atomic
def policy_delete(*, policy: Policy) -> None:
    locked = Policy.objects.select_for_update().get(pk=policy.pk)
    payload = {
        "policy_id": str(locked.pk),
        "name": locked.name,
        "version": locked.version,
        "policy": policy_as_dict(locked),
    }
    locked.delete()
    journal_append(kind="policy.deleted", payload=payload)


def policies_in_order() -> list[Policy]:
    return list(Policy.objects.enabled().in_order())


def policy_evaluate(*, call: ToolCall, full_trace: bool = False) -> Evaluation:
    """Which policy ``call`` meets and why (the dry run, and the gate's first step)."""
    workspace = current_workspace()
    return evaluate(
        call, policies=policies_in_order(), workspace_domains=list(workspace.email_domains or []), full_trace=full_trace
    )


# --- the gate's record ------------------------------------------------------------------------


@dataclass(frozen=True)
class Display:
    """What the runtime tells the gate for people to read; none of it affects the decision."""

    crew_name: str = ""
    agent_name: str = ""
    mission_goal: str = ""
    mission_cost_microusd: int = 0
    reasoning: str = ""
    diff: Any = None


def verdict_record(
    *,
    call: ToolCall,
    mission_id: uuid.UUID,
    tool_call_id: str,
    started_by_user_id: int | None,
    display: Display,
    evaluation: Evaluation | None = None,
) -> GateVerdict:
    """The gate's verdict for one tool call: the stored one if it was asked before, else a new
    one (with its approval request when people must decide).

    The verdict row is claimed first with INSERT ... ON CONFLICT DO NOTHING on the unique
    (mission, tool call) key: a re-run or a concurrent call for the same tool call gets no row
    (a concurrent one waits until the first commits) and answers what was decided then, even
    if policies changed since. No savepoint is needed, which keeps the hot path (every tool
    call of every mission) to a few round trips.
    """
    if evaluation is None:
        evaluation = policy_evaluate(call=call)
    workspace = current_workspace()
    with transaction.atomic():
        verdict = _verdict_claim(call=call, evaluation=evaluation, mission_id=mission_id, tool_call_id=tool_call_id)
        if verdict is None:
            existing = _verdict_for(mission_id, tool_call_id)
            if existing is None:  # pragma: no cover - the conflicting row is committed by now
                raise GovernanceUnavailable("The gate's earlier verdict for this tool call could not be read.")
            return existing
        policy = evaluation.policy
        if evaluation.approval is not None:
            verdict.request = _request_open(
                workspace=workspace,
                call=call,
                evaluation=evaluation,
                mission_id=mission_id,
                tool_call_id=tool_call_id,
                started_by_user_id=started_by_user_id,
                display=display,
            )
            GateVerdict.objects.filter(pk=verdict.pk).update(request=verdict.request)
        if evaluation.gate_action == "deny":
            journal_append(
                kind="approval.denied_by_policy",
                payload={
                    "tool_name": call.tool_name,
                    "tool_call_id": tool_call_id,
                    "arguments": call.arguments,
                    "reason": evaluation.reason,
                    "policy_id": str(policy.pk) if policy else None,
                    "policy_name": policy.name if policy else "",
                },
                crew_id=call.crew_id,
                agent_id=call.agent_id,
                mission_id=mission_id,
            )
        return verdict


_CLAIM_SQL = (
    "INSERT INTO {table} (mission_id, tool_call_id, tool_name, action, reason, source, policy_id, policy_name, "
    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (mission_id, tool_call_id) DO NOTHING RETURNING id"
)


def _verdict_claim(
    *, call: ToolCall, evaluation: Evaluation, mission_id: uuid.UUID, tool_call_id: str
) -> GateVerdict | None:
    policy = evaluation.policy
    verdict = GateVerdict(
        mission_id=mission_id,
        tool_call_id=tool_call_id,
        tool_name=call.tool_name,
        action=evaluation.gate_action,
        reason=evaluation.reason,
        source=evaluation.source,
        policy=policy,
        policy_name=policy.name if policy else "",
        created_at=timezone.now(),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL.format(table=GateVerdict._meta.db_table),
            [
                verdict.mission_id,
                verdict.tool_call_id,
                verdict.tool_name,
                verdict.action,
                verdict.reason,
                verdict.source,
                policy.pk if policy else None,
                verdict.policy_name,
                verdict.created_at,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    verdict.pk = row[0]
    verdict._state.adding = False
    verdict._state.db = "default"
    return verdict


def _verdict_for(mission_id: uuid.UUID, tool_call_id: str) -> GateVerdict | None:
    return (
        GateVerdict.objects.select_related("request").filter(mission_id=mission_id, tool_call_id=tool_call_id).first()
    )


def _request_open(
    *,
    workspace: Workspace,
    call: ToolCall,
    evaluation: Evaluation,
    mission_id: uuid.UUID,
    tool_call_id: str,
    started_by_user_id: int | None,
    display: Display,
) -> ApprovalRequest:
    spec = evaluation.approval
    assert spec is not None
    policy = evaluation.policy
    now = timezone.now()
    request = ApprovalRequest(
        mission_id=mission_id,
        crew_id=call.crew_id or uuid.UUID(int=0),
        agent_id=call.agent_id or uuid.UUID(int=0),
        tool_call_id=tool_call_id,
        tool_name=call.tool_name,
        arguments=call.arguments,
        diff=display.diff,
        reasoning=display.reasoning,
        has_side_effects=call.has_side_effects,
        estimated_cost_microusd=call.estimated_cost_microusd,
        autonomy_level=call.autonomy_level,
        mode=RequestMode.SYNC if spec.mode == "sync" else RequestMode.ASYNC,
        crew_name=display.crew_name[:200],
        agent_name=display.agent_name[:200],
        mission_goal=display.mission_goal,
        mission_cost_microusd=display.mission_cost_microusd,
        started_by_user_id=started_by_user_id,
        policy=policy,
        policy_snapshot=policy.snapshot() if policy else {"name": "", "source": "autonomy"},
        match_reason=evaluation.reason,
        approver_roles=spec.approver_roles,
        approver_user_ids=spec.approver_user_ids,
        required_approvals=spec.required_approvals,
        segregation_of_duties=spec.segregation_of_duties,
        deadline=now + timedelta(seconds=spec.timeout_seconds),
        timeout_action=spec.timeout_action,
        escalate_to_roles=spec.escalate_to_roles,
        escalation_timeout_seconds=spec.escalation_timeout_seconds,
        escalation_timeout_action=spec.escalation_timeout_action,
    )
    request.save(force_insert=True)
    ApprovalEvent.objects.create(
        request=request, kind=EventKind.REQUESTED, **_actor_fields(current_actor()), comment=evaluation.reason
    )
    journal_append(
        kind="approval.requested",
        payload={
            "request_id": str(request.pk),
            "tool_name": request.tool_name,
            "tool_call_id": tool_call_id,
            "arguments": request.arguments,
            "mode": request.mode,
            "reason": evaluation.reason,
            "policy_id": str(policy.pk) if policy else None,
            "policy_name": policy.name if policy else "",
            "approver_roles": request.approver_roles,
            "approver_user_ids": request.approver_user_ids,
            "required_approvals": request.required_approvals,
            "segregation_of_duties": request.segregation_of_duties,
            "deadline": request.deadline.isoformat() if request.deadline else None,
            "timeout_action": request.timeout_action,
            "diff": request.diff
            if isinstance(request.diff, dict)
            else ({"diff": request.diff} if request.diff else None),
            "reasoning": request.reasoning,
            "estimated_cost_microusd": request.estimated_cost_microusd,
            "started_by_user_id": started_by_user_id,
            "autonomy_level": request.autonomy_level,
        },
        crew_id=call.crew_id,
        agent_id=call.agent_id,
        mission_id=mission_id,
    )
    # The push is registered first: on commit it runs before the notification email and
    # webhook, which may be slow.
    push.publish_on_commit(push.CREATED, request, slug=workspace.slug)
    _notify_deciders(workspace, request, kind="approval.requested", subject=_subject("Approval needed", request))
    return request


# --- deciding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decider:
    """Who decides: a member (user id) or an integration (API key, no user id), with a role."""

    role: str
    actor: Actor
    user_id: int | None = None

    @classmethod
    def for_principal(cls, principal: Any) -> Decider:
        user = getattr(principal, "user", None)
        return cls(role=principal.role, actor=principal.actor, user_id=getattr(user, "pk", None))


Decision = Literal["approve", "deny", "comment"]


def _actor_fields(actor: Actor, user_id: int | None = None) -> dict[str, Any]:
    if user_id is None and actor.kind == "user" and actor.id.isdigit():
        user_id = int(actor.id)
    return {"actor_kind": actor.kind, "actor_id": actor.id[:64], "actor_label": actor.label[:150], "user_id": user_id}


def arguments_hash(arguments: Any) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _locked_request(request_id: uuid.UUID | str) -> ApprovalRequest:
    try:
        key = uuid.UUID(str(request_id))
    except ValueError:
        raise NotFound("No such approval request.") from None
    request = ApprovalRequest.objects.select_for_update().filter(pk=key).first()
    if request is None:
        raise NotFound("No such approval request.")
    return request


def _check_decider(request: ApprovalRequest, decider: Decider) -> None:
    if not role_allows(decider.role, "approvals.decide"):
        raise PermissionDenied(f"Your role ({decider.role}) does not allow approvals.decide.")
    if request.blocked_by_segregation(decider.user_id):
        raise PermissionDenied(
            "Segregation of duties: whoever started the mission cannot approve its actions.",
            code="segregation_of_duties",
        )
    if not request.may_be_decided_by(role=decider.role, user_id=decider.user_id):
        raise PermissionDenied(
            "This request names other people to decide it.",
            code="not_an_approver",
            details={"approver_roles": request.approver_roles},
        )


@transaction.atomic
def request_decide(
    *,
    request_id: uuid.UUID | str,
    decider: Decider,
    decision: Decision,
    comment: str = "",
    arguments: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Approve (optionally with edited arguments), deny, or comment on a request.

    An approval counts towards the arguments it saw: when a reviewer edits the arguments,
    earlier approvals of the old arguments no longer count. One denial denies.
    """
    if decision not in ("approve", "deny", "comment"):
        raise ValidationFailed(details={"decision": ["Use approve, deny or comment."]})
    comment = (comment or "").strip()
    request = _locked_request(request_id)
    workspace = current_workspace()
    actor = decider.actor
    if decision == "comment":
        if not role_allows(decider.role, "approvals.decide"):
            raise PermissionDenied(f"Your role ({decider.role}) does not allow approvals.decide.")
        if not comment:
            raise ValidationFailed(details={"comment": ["Write a comment."]})
        ApprovalEvent.objects.create(
            request=request, kind=EventKind.COMMENT, comment=comment, **_actor_fields(actor, decider.user_id)
        )
        journal_append(
            kind="approval.commented",
            payload={**_request_ref(request), "comment": comment},
            actor=actor,
            **_scope(request),
        )
        push.publish_on_commit(push.UPDATED, request, slug=workspace.slug)
        return request

    if not request.is_pending:
        raise Conflict(f"This request is already {request.status}.", code="already_decided")
    _check_decider(request, decider)

    edited = False
    if arguments is not None:
        if decision != "approve":
            raise ValidationFailed(details={"arguments": ["Arguments can be edited only when approving."]})
        if not isinstance(arguments, dict):
            raise ValidationFailed(details={"arguments": ["The arguments are a JSON object."]})
        if arguments != request.final_arguments:
            problems = registry.validate_arguments(request.tool_name, arguments)
            if problems:
                raise ValidationFailed(
                    "The edited arguments would be rejected by the tool.", details={"arguments": problems}
                )
            request.edited_arguments = arguments
            edited = True

    final = request.final_arguments
    digest = arguments_hash(final)
    if decision == "approve":
        already = request.events.filter(kind=EventKind.APPROVE, arguments_hash=digest)
        if decider.user_id is not None:
            already = already.filter(user_id=decider.user_id)
        else:
            already = already.filter(actor_kind=actor.kind, actor_id=actor.id)
        if already.exists():
            raise Conflict("You have already approved these arguments.", code="already_voted")

    ApprovalEvent.objects.create(
        request=request,
        kind=EventKind.APPROVE if decision == "approve" else EventKind.DENY,
        comment=comment,
        arguments=final,
        arguments_hash=digest,
        edited=edited,
        **_actor_fields(actor, decider.user_id),
    )
    now = timezone.now()
    if decision == "deny":
        _set_decider(request, decider, comment)
        _resolve(request, status=RequestStatus.DENIED, resolution=Resolution.DECISION, now=now)
        _record_decision(request, decision="deny", decider=decider, comment=comment, edited=edited, now=now)
    else:
        approvals = _approval_count(request, digest)
        if approvals >= request.required_approvals:
            _set_decider(request, decider, comment)
            _resolve(request, status=RequestStatus.APPROVED, resolution=Resolution.DECISION, now=now)
            _record_decision(
                request,
                decision="approve",
                decider=decider,
                comment=comment,
                edited=edited,
                now=now,
                approvals=approvals,
            )
        else:
            request.save(update_fields=["edited_arguments", "updated_at"])
            journal_append(
                kind="approval.vote_recorded",
                payload={
                    **_request_ref(request),
                    **_policy_ref(request),
                    "decision": "approve",
                    "comment": comment,
                    "arguments": final,
                    "edited": edited,
                    "approvals": approvals,
                    "required_approvals": request.required_approvals,
                },
                actor=actor,
                **_scope(request),
            )
            push.publish_on_commit(push.UPDATED, request, slug=workspace.slug)
            return request
    push.publish_on_commit(push.RESOLVED, request, slug=workspace.slug)
    return request


def _approval_count(request: ApprovalRequest, digest: str) -> int:
    voters = set()
    for event in request.events.filter(kind=EventKind.APPROVE, arguments_hash=digest):
        voters.add(("user", str(event.user_id)) if event.user_id is not None else (event.actor_kind, event.actor_id))
    return len(voters)


def _set_decider(request: ApprovalRequest, decider: Decider, comment: str) -> None:
    request.decided_by_label = decider.actor.label[:150]
    request.decided_by_user_id = decider.user_id
    request.decision_comment = comment


def _resolve(request: ApprovalRequest, *, status: str, resolution: str, now: datetime) -> None:
    """One UPDATE with everything set before, and the runtime's wake-up (sent at commit)."""
    request.status = status
    request.resolution = resolution
    request.decided_at = now
    request.save()
    push.wake(request)


def _record_decision(
    request: ApprovalRequest,
    *,
    decision: str,
    decider: Decider,
    comment: str,
    edited: bool,
    now: datetime,
    approvals: int | None = None,
) -> None:
    payload: dict[str, Any] = {
        **_request_ref(request),
        **_policy_ref(request),
        "decision": decision,
        "status": request.status,
        "comment": comment,
        "arguments": request.final_arguments,
        "original_arguments": request.arguments,
        "edited": request.was_edited,
        "decided_by": request.decided_by_label,
        "decided_by_user_id": decider.user_id,
        "decided_at": now.isoformat(),
    }
    if approvals is not None:
        payload["approvals"] = approvals
        payload["required_approvals"] = request.required_approvals
    journal_append(kind="approval.decided", payload=payload, actor=decider.actor, **_scope(request))


def _request_ref(request: ApprovalRequest) -> dict[str, Any]:
    return {"request_id": str(request.pk), "tool_name": request.tool_name, "tool_call_id": request.tool_call_id}


def _policy_ref(request: ApprovalRequest) -> dict[str, Any]:
    return {"policy_id": request.policy_snapshot.get("id"), "policy_name": request.policy_snapshot.get("name", "")}


def _scope(request: ApprovalRequest) -> dict[str, Any]:
    return {"crew_id": request.crew_id, "agent_id": request.agent_id, "mission_id": request.mission_id}


# --- timeouts -------------------------------------------------------------------------------


@dataclass
class SweepReport:
    timed_out: int = 0
    escalated: int = 0
    next_deadline: datetime | None = None
    workspaces: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: SweepReport) -> None:
        self.timed_out += other.timed_out
        self.escalated += other.escalated
        self.workspaces += other.workspaces
        self.errors.extend(other.errors)
        if other.next_deadline is not None and (self.next_deadline is None or other.next_deadline < self.next_deadline):
            self.next_deadline = other.next_deadline

    def as_dict(self) -> dict[str, Any]:
        return {
            "timed_out": self.timed_out,
            "escalated": self.escalated,
            "workspaces": self.workspaces,
            "next_deadline": self.next_deadline.isoformat() if self.next_deadline else None,
            "errors": self.errors,
        }


def requests_sweep(*, now: datetime | None = None, limit: int = 1000) -> SweepReport:
    """Apply the timeout action of every overdue request in the active workspace.

    Each request is handled in its own transaction, locked with SKIP LOCKED: several workers
    may sweep at once, and a request a reviewer is deciding right now is left to the reviewer.
    """
    report = SweepReport(workspaces=1)
    workspace = current_workspace()
    for _ in range(limit):
        moment = now or timezone.now()
        with transaction.atomic():
            request = (
                ApprovalRequest.objects.select_for_update(skip_locked=True)
                .filter(status=RequestStatus.PENDING, deadline__lte=moment)
                .order_by("deadline")
                .first()
            )
            if request is None:
                break
            if request.timeout_action == TimeoutAction.ESCALATE and request.escalation_level == 0:
                _escalate(workspace, request, now=moment)
                report.escalated += 1
            else:
                _time_out(workspace, request, now=moment)
                report.timed_out += 1
    report.next_deadline = (
        ApprovalRequest.objects.pending()
        .filter(deadline__isnull=False)
        .order_by("deadline")
        .values_list("deadline", flat=True)
        .first()
    )
    return report


def requests_sweep_all(*, now: datetime | None = None) -> SweepReport:
    """Sweep every active workspace. Crosses workspaces on purpose: the worker serves them all."""
    report = SweepReport()
    for workspace in Workspace.objects.active().exclude(schema_name=get_public_schema_name()):
        try:
            with workspace_schema(workspace):
                report.add(requests_sweep(now=now))
        except Exception as exc:  # one broken workspace must not stop the others' timeouts
            logger.exception("approval sweep failed in %s", workspace.slug)
            report.errors.append(f"{workspace.slug}: {exc}")
    return report


def _escalate(workspace: Workspace, request: ApprovalRequest, *, now: datetime) -> None:
    seconds = request.escalation_timeout_seconds or 3600
    added = [r for r in request.escalate_to_roles if r not in request.approver_roles]
    request.approver_roles = sorted({*request.approver_roles, *request.escalate_to_roles})
    request.escalation_level += 1
    request.escalated_at = now
    request.deadline = now + timedelta(seconds=seconds)
    request.timeout_action = request.escalation_timeout_action
    request.save()
    ApprovalEvent.objects.create(
        request=request,
        kind=EventKind.ESCALATED,
        comment=f"No decision in time; escalated to {', '.join(request.escalate_to_roles)}.",
        details={"to_roles": request.escalate_to_roles, "deadline": request.deadline.isoformat()},
        **_actor_fields(SYSTEM),
    )
    journal_append(
        kind="approval.escalated",
        payload={
            **_request_ref(request),
            **_policy_ref(request),
            "to_roles": list(request.escalate_to_roles),
            "approver_roles": list(request.approver_roles),
            "deadline": request.deadline.isoformat(),
        },
        actor=SYSTEM,
        **_scope(request),
    )
    push.publish_on_commit(push.UPDATED, request, slug=workspace.slug)
    _notify_deciders(
        workspace,
        request,
        kind="approval.escalated",
        subject=_subject("Escalated approval", request),
        roles=added or request.escalate_to_roles,
        include_users=False,
    )


def _time_out(workspace: Workspace, request: ApprovalRequest, *, now: datetime) -> None:
    action = request.timeout_action
    status = RequestStatus.APPROVED if action == TimeoutAction.APPROVE else RequestStatus.DENIED
    deadline = request.deadline or now
    request.decided_by_label = "timeout"
    request.decision_comment = f"No decision within the timeout; the timeout action is {action}."
    _resolve(request, status=status, resolution=Resolution.TIMEOUT, now=now)
    ApprovalEvent.objects.create(
        request=request,
        kind=EventKind.TIMED_OUT,
        comment=request.decision_comment,
        details={"action": action},
        **_actor_fields(SYSTEM),
    )
    journal_append(
        kind="approval.timed_out",
        payload={
            **_request_ref(request),
            **_policy_ref(request),
            "action": action,
            "status": status,
            "deadline": deadline.isoformat(),
            "arguments": request.final_arguments,
        },
        actor=SYSTEM,
        **_scope(request),
    )
    push.publish_on_commit(push.RESOLVED, request, slug=workspace.slug)


# --- the runtime's side -------------------------------------------------------------------------


@transaction.atomic
def requests_cancel_for_mission(*, mission_id: uuid.UUID | str, reason: str = "mission cancelled") -> int:
    """Cancel a mission's pending requests (the mission ended); returns how many."""
    workspace = current_workspace()
    count = 0
    for request in ApprovalRequest.objects.select_for_update().filter(
        mission_id=mission_id, status=RequestStatus.PENDING
    ):
        request.decision_comment = reason
        _resolve(request, status=RequestStatus.CANCELLED, resolution=Resolution.CANCELLED, now=timezone.now())
        ApprovalEvent.objects.create(
            request=request, kind=EventKind.CANCELLED, comment=reason, **_actor_fields(current_actor())
        )
        journal_append(
            kind="approval.cancelled", payload={**_request_ref(request), "reason": reason}, **_scope(request)
        )
        push.publish_on_commit(push.RESOLVED, request, slug=workspace.slug)
        count += 1
    return count


@transaction.atomic
def request_mark_executed(*, request_id: uuid.UUID | str, ok: bool, detail: str = "") -> bool:
    """Record that the runtime ran an approved call. Returns False when it was already recorded
    (so a runtime may use it as a once-only claim)."""
    request = _locked_request(request_id)
    if request.status != RequestStatus.APPROVED:
        raise Conflict(f"Only approved requests run; this one is {request.status}.", code="not_approved")
    if request.executed_at is not None:
        return False
    request.executed_at = timezone.now()
    request.save(update_fields=["executed_at", "updated_at"])
    payload: dict[str, Any] = {**_request_ref(request), "ok": ok}
    if detail:
        payload["detail"] = detail[:2000]
    journal_append(kind="approval.executed", payload=payload, **_scope(request))
    return True


# --- notifications ------------------------------------------------------------------------------


def _subject(prefix: str, request: ApprovalRequest) -> str:
    who = f" by {request.agent_name}" if request.agent_name else ""
    crew = f" ({request.crew_name})" if request.crew_name else ""
    return f"{prefix}: {request.tool_name}{who}{crew}"


def _notify_deciders(
    workspace: Workspace,
    request: ApprovalRequest,
    *,
    kind: str,
    subject: str,
    roles: list[str] | None = None,
    include_users: bool = True,
) -> None:
    """Email / webhook / in-app notice to the people who may decide, never to whoever started
    the mission when segregation of duties excludes them."""
    from apps.notifications.services import notify

    roles = list(request.approver_roles if roles is None else roles)
    named = list(request.approver_user_ids) if include_users else []
    eligible = Q(memberships__workspace=workspace) & (Q(memberships__role__in=roles) | Q(pk__in=named))
    queryset = get_user_model().objects.filter(eligible, is_active=True).distinct()
    if request.segregation_of_duties and request.started_by_user_id is not None:
        queryset = queryset.exclude(pk=request.started_by_user_id)
    users = list(queryset)
    if not users:
        logger.warning("approval request %s has nobody to notify", request.pk)
        return
    from apps.tenants.urlconf import workspace_reverse

    link = workspace_reverse(workspace.slug, "approvals:inbox") + f"#req-{request.pk}"
    lines = [
        f"{request.agent_name or 'An agent'} wants to call {request.tool_name}.",
        f"Mission: {request.mission_goal}" if request.mission_goal else "",
        f"Why this needs approval: {request.match_reason}",
        f"Arguments: {json.dumps(request.final_arguments, ensure_ascii=False)[:2000]}",
        f"Decide before {request.deadline:%Y-%m-%d %H:%M} UTC." if request.deadline else "",
    ]
    notify(
        workspace=workspace,
        kind=kind,
        subject=subject,
        body="\n".join(line for line in lines if line),
        users=users,
        link=link,
    )
