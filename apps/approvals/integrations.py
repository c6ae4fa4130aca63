"""Hooks other apps call without importing approvals: the vault's L4 escalation."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from . import services
from .matching import ApprovalSpec, Evaluation, ToolCall
from .models import AutonomyLevel, PolicyAction, RequestStatus

logger = logging.getLogger(__name__)

NIL = uuid.UUID(int=0)


def vault_escalation(request: Any) -> Any:
    """Turn an L4 secret request into an approval request (one per secret, crew, agent,
    mission and tool; asking again answers from the same request).

    Policies decide who approves: a policy matching the tool name ``secret:<name>`` with a
    require-approval action supplies approvers and timeouts, and a deny policy refuses at once.
    An allow policy cannot waive the approval: L4 secrets always need a person.
    """
    from apps.vault.escalation import EscalationOutcome

    mission_id = request.mission_id or NIL
    tool_call_id = f"vault:{request.secret_id}:{request.crew_id or '-'}:{request.agent_id or '-'}:{request.tool_name}"[
        :200
    ]
    call = ToolCall(
        tool_name=f"secret:{request.secret_name}",
        arguments={
            "secret": request.secret_name,
            "tier": request.tier,
            "tool": request.tool_name,
            "intent": request.intent,
        },
        has_side_effects=True,
        crew_id=request.crew_id or NIL,
        agent_id=request.agent_id or NIL,
        autonomy_level=AutonomyLevel.STRICT,
    )
    evaluation = services.policy_evaluate(call=call)
    if evaluation.action not in (PolicyAction.DENY, PolicyAction.REQUIRE_SYNC):
        # allow, async, or the autonomy default: still a person, and the secret waits.
        spec = evaluation.approval or ApprovalSpec.default("sync")
        evaluation = Evaluation(
            action=PolicyAction.REQUIRE_SYNC,
            source=evaluation.source,
            reason=f"L4 secret {request.secret_name} always needs a person; {evaluation.reason}",
            policy=evaluation.policy if evaluation.approval else None,
            approval=replace(spec, mode="sync"),
        )
    verdict = services.verdict_record(
        call=call,
        mission_id=mission_id,
        tool_call_id=tool_call_id,
        started_by_user_id=None,
        display=services.Display(reasoning=request.intent, mission_goal=request.secret_description),
        evaluation=evaluation,
    )
    if verdict.action == "deny" or verdict.request is None:
        return EscalationOutcome.denied(reason=verdict.reason)
    approval = verdict.request
    reference = str(approval.pk)
    if approval.status == RequestStatus.APPROVED:
        return EscalationOutcome.approved(reference=reference, decided_by=approval.decided_by_label)
    if approval.status == RequestStatus.PENDING:
        return EscalationOutcome.pending(reference=reference)
    return EscalationOutcome.denied(
        reference=reference,
        decided_by=approval.decided_by_label,
        reason=approval.decision_comment or f"The approval request was {approval.status}.",
    )


def connect() -> None:
    try:
        from apps.vault.escalation import register_escalation_handler
    except ImportError:  # the vault is optional for approvals
        return
    register_escalation_handler(vault_escalation)
