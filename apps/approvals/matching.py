"""Which policy a tool call meets, and why: shared by the gate and the dry-run endpoint.

Policies are tried in order (lowest priority number first); the first whose every test holds
decides. When none does, the crew's autonomy level supplies the default:

- strict:  every side-effecting tool waits for approval (sync);
- guided:  side effects that reach outside the workspace (an email address or URL outside its
           domains) wait; internal side effects are queued for review (async);
- trusted: side effects that reach outside are queued for review (async), the agent goes on;
           internal ones run;
- full:    nothing needs approval.

Each level asks less than the one before it, for every kind of call.

Tools without side effects are allowed by default at every level. An unknown level is
treated as strict: governance fails closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from django.conf import settings

from apps.core.money import format_usd

from . import predicates
from .models import AutonomyLevel, FinalTimeoutAction, Policy, PolicyAction, TimeoutAction, decider_roles

GateAction = Literal["allow", "deny", "wait", "queue"]
GATE_ACTIONS: dict[str, GateAction] = {
    PolicyAction.ALLOW: "allow",
    PolicyAction.DENY: "deny",
    PolicyAction.REQUIRE_SYNC: "wait",
    PolicyAction.REQUIRE_ASYNC: "queue",
}


@dataclass(frozen=True)
class ToolCall:
    tool_name: str
    arguments: dict[str, Any]
    has_side_effects: bool = True
    estimated_cost_microusd: int = 0
    crew_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    autonomy_level: str = AutonomyLevel.STRICT


@dataclass(frozen=True)
class ApprovalSpec:
    """Who may decide, how many must agree, and the clock."""

    mode: Literal["sync", "async"]
    approver_roles: list[str]
    approver_user_ids: list[int]
    required_approvals: int
    segregation_of_duties: bool
    timeout_seconds: int
    timeout_action: str
    escalate_to_roles: list[str] = field(default_factory=list)
    escalation_timeout_seconds: int | None = None
    escalation_timeout_action: str = FinalTimeoutAction.DENY

    @classmethod
    def from_policy(cls, policy: Policy) -> ApprovalSpec:
        return cls(
            mode="sync" if policy.action == PolicyAction.REQUIRE_SYNC else "async",
            approver_roles=list(policy.approver_roles),
            approver_user_ids=list(policy.approver_user_ids),
            required_approvals=policy.required_approvals,
            segregation_of_duties=policy.segregation_of_duties,
            timeout_seconds=policy.timeout_seconds,
            timeout_action=policy.timeout_action,
            escalate_to_roles=list(policy.escalate_to_roles),
            escalation_timeout_seconds=policy.escalation_timeout_seconds,
            escalation_timeout_action=policy.escalation_timeout_action,
        )

    @classmethod
    def default(cls, mode: Literal["sync", "async"]) -> ApprovalSpec:
        return cls(
            mode=mode,
            approver_roles=sorted(decider_roles()),
            approver_user_ids=[],
            required_approvals=1,
            segregation_of_duties=True,
            timeout_seconds=int(getattr(settings, "APPROVALS_DEFAULT_TIMEOUT_SECONDS", 3600)),
            timeout_action=TimeoutAction.DENY,
        )


@dataclass(frozen=True)
class PolicyTrace:
    policy_id: str
    name: str
    priority: int
    action: str
    matched: bool
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy_id": self.policy_id,
            "name": self.name,
            "priority": self.priority,
            "action": self.action,
            "matched": self.matched,
            "reasons": self.reasons,
        }


@dataclass(frozen=True)
class Evaluation:
    action: str  # a PolicyAction value
    source: Literal["policy", "autonomy"]
    reason: str
    policy: Policy | None = None
    approval: ApprovalSpec | None = None
    trace: list[PolicyTrace] = field(default_factory=list)

    @property
    def gate_action(self) -> GateAction:
        return GATE_ACTIONS[self.action]


def policy_matches(policy: Policy, call: ToolCall, *, workspace_domains: Sequence[str]) -> tuple[bool, list[str]]:
    """Whether ``policy`` applies to ``call``, with the reasons (it stops at the first miss)."""
    reasons: list[str] = []
    if policy.side_effects_only and not call.has_side_effects:
        return False, [f"{call.tool_name} has no side effects"]
    patterns = [p for p in policy.tool_pattern.split("|") if p]
    hit = next((p for p in patterns if fnmatchcase(call.tool_name, p)), None)
    if hit is None:
        return False, [f"tool {call.tool_name} does not match {policy.tool_pattern}"]
    reasons.append(f"tool {call.tool_name} matches {hit}")
    if policy.crew_ids:
        if str(call.crew_id) not in policy.crew_ids:
            return False, [*reasons, "crew is not one of the policy's crews"]
        reasons.append("crew is one of the policy's crews")
    if policy.agent_ids:
        if str(call.agent_id) not in policy.agent_ids:
            return False, [*reasons, "agent is not one of the policy's agents"]
        reasons.append("agent is one of the policy's agents")
    if policy.min_estimated_cost_microusd is not None:
        limit = policy.min_estimated_cost_microusd
        cost = call.estimated_cost_microusd
        if cost < limit:
            return False, [*reasons, f"estimated cost {format_usd(cost, 6)} is below {format_usd(limit, 6)}"]
        reasons.append(f"estimated cost {format_usd(cost, 6)} is at least {format_usd(limit, 6)}")
    matched, results = predicates.evaluate(policy.conditions, call.arguments, workspace_domains=workspace_domains)
    reasons.extend(result.explanation for result in results)
    return matched, reasons


def evaluate(
    call: ToolCall,
    *,
    policies: Sequence[Policy],
    workspace_domains: Sequence[str],
    full_trace: bool = False,
) -> Evaluation:
    """The decision for ``call``. ``policies`` must be the enabled ones, in order.
    With ``full_trace`` every policy is explained (dry run); otherwise evaluation stops at the
    first match."""
    trace: list[PolicyTrace] = []
    winner: Policy | None = None
    winner_reasons: list[str] = []
    for policy in policies:
        if winner is not None and not full_trace:
            break
        matched, reasons = policy_matches(policy, call, workspace_domains=workspace_domains)
        trace.append(
            PolicyTrace(
                policy_id=str(policy.pk),
                name=policy.name,
                priority=policy.priority,
                action=policy.action,
                matched=matched,
                reasons=reasons,
            )
        )
        if matched and winner is None:
            winner, winner_reasons = policy, reasons
    if winner is not None:
        reason = f"policy {winner.name!r} (priority {winner.priority}): " + "; ".join(winner_reasons)
        approval = ApprovalSpec.from_policy(winner) if winner.requires_approval else None
        return Evaluation(
            action=winner.action, source="policy", reason=reason, policy=winner, approval=approval, trace=trace
        )
    action, reason = autonomy_default(call, workspace_domains=workspace_domains)
    approval = None
    if action == PolicyAction.REQUIRE_SYNC:
        approval = ApprovalSpec.default("sync")
    elif action == PolicyAction.REQUIRE_ASYNC:
        approval = ApprovalSpec.default("async")
    return Evaluation(action=action, source="autonomy", reason=reason, approval=approval, trace=trace)


def autonomy_default(call: ToolCall, *, workspace_domains: Sequence[str]) -> tuple[str, str]:
    level = call.autonomy_level
    prefix = "no policy matched; "
    if level not in AutonomyLevel.values:
        level_text = f"unknown autonomy level {level!r} treated as strict"
        level = AutonomyLevel.STRICT
    else:
        level_text = f"autonomy level {level}"
    if level == AutonomyLevel.FULL:
        return PolicyAction.ALLOW, prefix + f"{level_text}: nothing needs approval"
    if not call.has_side_effects:
        return PolicyAction.ALLOW, prefix + f"{level_text}: {call.tool_name} has no side effects"
    if level == AutonomyLevel.STRICT:
        return PolicyAction.REQUIRE_SYNC, prefix + f"{level_text}: every side-effecting tool waits for approval"
    outside = predicates.reaches_outside(call.arguments, workspace_domains)
    shown = ", ".join(outside[:5])
    if level == AutonomyLevel.TRUSTED:
        if outside:
            return PolicyAction.REQUIRE_ASYNC, prefix + f"{level_text}: reaches outside ({shown}), queued for review"
        return PolicyAction.ALLOW, prefix + f"{level_text}: internal side effect"
    if outside:
        return PolicyAction.REQUIRE_SYNC, prefix + f"{level_text}: reaches outside the workspace ({shown}), waits"
    return PolicyAction.REQUIRE_ASYNC, prefix + f"{level_text}: internal side effect, queued for review"
