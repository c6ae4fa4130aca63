"""The approvals gate in the mission graph: sync (the graph interrupts, the worker resumes it
with the decision), async (queued, the agent goes on, the worker runs it once approved),
denial, edit-and-approve, and the staged CRM change a reviewer sees."""

from __future__ import annotations

from typing import Any

import pytest

from apps.approvals import services as approvals
from apps.approvals.models import ApprovalRequest
from apps.audit.models import JournalEntry
from apps.core.context import user_actor
from apps.crews.models import CrmAccount, CrmChange, CrmChangeStatus, Mission, MissionStatus, ToolCall, ToolCallStatus
from apps.crews.runtime.executor import settle_queued_call
from apps.crews.runtime.worker import resolve_waits
from apps.llm.providers.offline import ScriptToolCall, ScriptTurn
from tests.crews.conftest import make_crew, run_to_rest, start, unique

pytestmark = pytest.mark.django_db

EMAIL = {"to": ["sarah@customer.example"], "subject": "Your question", "body": "Here is the answer."}


def _policy(crew: Any, tool: str, action: str) -> None:
    approvals.policy_create(
        fields={
            "name": unique("policy"),
            "priority": 1,
            "tool_pattern": tool,
            "crew_ids": [str(crew.pk)],
            "action": action,
            "approver_roles": ["reviewer"],
            "required_approvals": 1,
            "segregation_of_duties": True,
            "timeout_seconds": 3600,
            "timeout_action": "deny",
        }
    )


def _decide(request_id: str, reviewer: Any, decision: str, comment: str = "", arguments: Any = None) -> None:
    decider = approvals.Decider(role="reviewer", actor=user_actor(reviewer), user_id=reviewer.pk)
    approvals.request_decide(
        request_id=request_id,
        decider=decider,
        decision=decision,
        comment=comment,
        arguments=arguments,  # type: ignore[arg-type]
    )


def _email_mission(in_acme: Any, script: Any, operator: Any) -> Mission:
    marker = script(
        unique("[sync]"),
        [
            ScriptTurn(text="Sending the reply.", tool_calls=[ScriptToolCall("send_email", EMAIL)]),
            ScriptTurn(text="Finished."),
        ],
    )
    crew = make_crew(tools=["send_email"])
    _policy(crew, "send_email", "require_sync")
    mission = run_to_rest(in_acme, start(crew, f"{marker} reply", created_by_user=operator))
    assert mission.status == MissionStatus.WAITING_APPROVAL, mission.error
    return mission


def test_sync_approval_interrupts_the_graph_and_the_decision_resumes_it(
    in_acme: Any, script: Any, operator: Any, reviewer: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mission = _email_mission(in_acme, script, operator)
    call = ToolCall.objects.get(mission=mission)
    assert call.status == ToolCallStatus.WAITING and mission.waiting_on == call.approval_request_id
    request = ApprovalRequest.objects.get(pk=call.approval_request_id)
    assert request.started_by_user_id == operator.pk and request.crew_name == mission.crew.name
    assert mailoutbox == []
    assert resolve_waits(workspace=in_acme) == 0  # nothing decided yet

    _decide(call.approval_request_id, reviewer, "approve", "Looks right.")
    assert resolve_waits(workspace=in_acme) == 1
    mission.refresh_from_db()
    assert mission.status == MissionStatus.QUEUED and mission.resume_payload["status"] == "approved"
    with django_capture_on_commit_callbacks(execute=True):  # approvals hears that it ran, after commit
        mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED and mission.result == "Finished."
    assert len(mailoutbox) == 1
    call.refresh_from_db()
    assert call.status == ToolCallStatus.SUCCEEDED and call.decision["status"] == "approved"
    request.refresh_from_db()
    assert request.executed_at is not None
    kinds = list(JournalEntry.objects.filter(mission_id=mission.pk).order_by("seq").values_list("kind", flat=True))
    order = [kinds.index(k) for k in ("mission.waiting", "approval.decided", "mission.resumed", "tool.executed")]
    assert order == sorted(order)


def test_denial_goes_back_to_the_model_with_the_reviewers_comment(
    in_acme: Any, script: Any, operator: Any, reviewer: Any, mailoutbox: Any
) -> None:
    mission = _email_mission(in_acme, script, operator)
    call = ToolCall.objects.get(mission=mission)
    _decide(call.approval_request_id, reviewer, "deny", "Not to customers yet.")
    resolve_waits(workspace=in_acme)
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED and mailoutbox == []
    call.refresh_from_db()
    assert call.status == ToolCallStatus.DENIED and "Not to customers yet." in call.error
    tool_message = mission.messages.get(role="tool")
    assert "Not to customers yet." in tool_message.content
    assert JournalEntry.objects.get(mission_id=mission.pk, kind="tool.failed").payload["outcome"] == "denied"


def test_edit_and_approve_runs_the_edited_arguments(
    in_acme: Any, script: Any, operator: Any, reviewer: Any, mailoutbox: Any
) -> None:
    mission = _email_mission(in_acme, script, operator)
    call = ToolCall.objects.get(mission=mission)
    edited = {**EMAIL, "subject": "Re: your Salesforce question"}
    _decide(call.approval_request_id, reviewer, "approve", "Better subject.", arguments=edited)
    resolve_waits(workspace=in_acme)
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED
    assert [m.subject for m in mailoutbox] == ["Re: your Salesforce question"]
    call.refresh_from_db()
    assert call.arguments["subject"] == "Your question" and call.approved_arguments == edited
    executed = JournalEntry.objects.get(mission_id=mission.pk, kind="tool.executed")
    assert executed.payload["edited"] is True and executed.payload["arguments"] == edited


def test_cancelling_a_waiting_mission_withdraws_its_request(
    in_acme: Any, script: Any, operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.crews.services import mission_cancel

    mission = _email_mission(in_acme, script, operator)
    with django_capture_on_commit_callbacks(execute=True):
        mission_cancel(mission=mission)
    mission.refresh_from_db()
    assert mission.status == MissionStatus.CANCELLED
    request = ApprovalRequest.objects.get(pk=ToolCall.objects.get(mission=mission).approval_request_id)
    assert request.status == "cancelled"


def test_async_review_queues_the_call_and_the_agent_goes_on(
    in_acme: Any, script: Any, operator: Any, reviewer: Any
) -> None:
    account = CrmAccount.objects.create(name=unique("Acme"), stage="customer", plan="Team")
    update = {"account": account.name, "changes": {"plan": "Enterprise"}, "reason": "upgrade"}
    marker = script(
        unique("[async]"),
        [
            ScriptTurn(text="Proposing the upgrade.", tool_calls=[ScriptToolCall("crm_stage_update", update)]),
            ScriptTurn(
                text="Checking the account meanwhile.", tool_calls=[ScriptToolCall("crm_lookup", {"query": "Acme"})]
            ),
            ScriptTurn(text="Done for now."),
        ],
    )
    crew = make_crew(tools=["crm_stage_update", "crm_lookup"])
    _policy(crew, "crm_stage_update", "require_async")
    mission = start(crew, f"{marker} upgrade", created_by_user=operator)

    def approve_while_running(line: str) -> None:
        if line.startswith("step 2:"):
            call = ToolCall.objects.get(mission=mission, tool="crm_stage_update")
            assert call.status == ToolCallStatus.QUEUED
            request = ApprovalRequest.objects.get(pk=call.approval_request_id)
            assert request.diff["diff"] == [{"field": "plan", "before": "Team", "after": "Enterprise"}]
            change = CrmChange.objects.get(mission_id=mission.pk)
            assert change.status == CrmChangeStatus.STAGED  # staged for the reviewer, not shipped
            _decide(call.approval_request_id, reviewer, "approve")
            assert settle_queued_call(workspace=in_acme, record=call)

    mission = run_to_rest(in_acme, mission, progress=approve_while_running)
    assert mission.status == MissionStatus.COMPLETED
    call = ToolCall.objects.get(mission=mission, tool="crm_stage_update")
    assert call.status == ToolCallStatus.SUCCEEDED and call.queued and call.delivered_at is not None
    account.refresh_from_db()
    assert account.plan == "Enterprise"
    update_message = mission.messages.filter(role="user", content__startswith="Update: your queued call").get()
    assert "approved and ran" in update_message.content
    executed = JournalEntry.objects.get(
        mission_id=mission.pk, kind="tool.executed", payload__tool_name="crm_stage_update"
    )
    assert executed.payload["late"] is True
