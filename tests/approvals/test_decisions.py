"""Deciding: who may, how many, segregation of duties, edit-and-approve, and the wake-up."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from apps.approvals import registry, services
from apps.approvals.gate import gate, request_outcome
from apps.approvals.models import ApprovalRequest
from apps.core.context import Actor
from apps.core.errors import Conflict, PermissionDenied, ValidationFailed
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import call_kwargs, decider_for, journal, make_policy

pytestmark = [pytest.mark.django_db]


def open_request(**overrides: Any) -> ApprovalRequest:
    decision = gate(**call_kwargs(**overrides))
    assert decision.approval_request_id is not None
    return ApprovalRequest.objects.get(pk=decision.approval_request_id)


def decide(request: ApprovalRequest, user: Any, role: str, decision: str, **extra: Any) -> ApprovalRequest:
    return services.request_decide(
        request_id=request.pk,
        decider=decider_for(user, role),
        decision=decision,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.usefixtures("in_acme")
class TestApproveAndDeny:
    def test_approval_is_recorded_with_decider_time_comment_and_policy(self, reviewer: Any) -> None:
        policy = make_policy(action="require_sync")
        request = decide(open_request(), reviewer, "reviewer", "approve", comment="Looks right.")
        assert request.status == "approved" and request.resolution == "decision"
        assert request.decided_by_label == "acme-reviewer" and request.decided_by_user_id == reviewer.pk
        assert request.decided_at is not None and request.decision_comment == "Looks right."
        entry = journal("approval.decided")[-1]
        assert entry.actor_label == "acme-reviewer"
        assert entry.payload["decision"] == "approve" and entry.payload["comment"] == "Looks right."
        assert entry.payload["policy_name"] == policy.name
        assert entry.payload["arguments"] == request.arguments

    def test_one_denial_denies(self, reviewer: Any) -> None:
        request = decide(open_request(), reviewer, "reviewer", "deny", comment="Wrong customer.")
        assert request.status == "denied"
        assert journal("approval.decided")[-1].payload["status"] == "denied"

    def test_a_decided_request_cannot_be_decided_again(self, reviewer: Any, reviewer2: Any) -> None:
        request = decide(open_request(), reviewer, "reviewer", "approve")
        with pytest.raises(Conflict) as caught:
            decide(request, reviewer2, "reviewer", "deny")
        assert caught.value.code == "already_decided"

    def test_comments_are_history_not_decisions(self, reviewer: Any) -> None:
        request = decide(open_request(), reviewer, "reviewer", "comment", comment="Checking with sales.")
        assert request.status == "pending"
        assert [e.kind for e in request.events.all()] == ["requested", "comment"]
        assert journal("approval.commented")[-1].payload["comment"] == "Checking with sales."
        with pytest.raises(ValidationFailed):
            decide(request, reviewer, "reviewer", "comment", comment="  ")


@pytest.mark.usefixtures("in_acme")
class TestWhoMayDecide:
    def test_roles_outside_the_policy_may_not(self, admin_user: Any, reviewer: Any) -> None:
        make_policy(action="require_sync", approver_roles=["admin"])
        request = open_request()
        with pytest.raises(PermissionDenied) as caught:
            decide(request, reviewer, "reviewer", "approve")
        assert caught.value.code == "not_an_approver"
        assert decide(request, admin_user, "admin", "approve").status == "approved"

    def test_named_users(self, reviewer: Any, reviewer2: Any) -> None:
        make_policy(action="require_sync", approver_user_ids=[reviewer2.pk])
        request = open_request()
        with pytest.raises(PermissionDenied):
            decide(request, reviewer, "reviewer", "approve")
        assert decide(request, reviewer2, "reviewer", "approve").status == "approved"

    def test_a_viewer_never_decides(self, viewer: Any) -> None:
        make_policy(action="require_sync", approver_user_ids=[viewer.pk])  # even when named
        with pytest.raises(PermissionDenied):
            decide(open_request(), viewer, "viewer", "approve")

    def test_segregation_of_duties_whoever_started_the_mission_cannot_approve(
        self, reviewer: Any, reviewer2: Any
    ) -> None:
        request = open_request(started_by_user_id=reviewer.pk)
        with pytest.raises(PermissionDenied) as caught:
            decide(request, reviewer, "reviewer", "approve")
        assert caught.value.code == "segregation_of_duties"
        assert decide(request, reviewer2, "reviewer", "approve").status == "approved"

    def test_segregation_of_duties_can_be_switched_off_by_a_policy(self, reviewer: Any) -> None:
        make_policy(action="require_sync", segregation_of_duties=False)
        request = open_request(started_by_user_id=reviewer.pk)
        assert decide(request, reviewer, "reviewer", "approve").status == "approved"

    def test_an_api_key_with_a_deciding_role_may_decide(self) -> None:
        request = open_request()
        decider = services.Decider(role="reviewer", actor=Actor(kind="api_key", id="7", label="api key slack"))
        decided = services.request_decide(request_id=request.pk, decider=decider, decision="approve")
        assert decided.status == "approved" and decided.decided_by_label == "api key slack"


@pytest.mark.usefixtures("in_acme")
class TestSeveralApprovals:
    def test_two_distinct_approvals_are_needed(self, reviewer: Any, reviewer2: Any) -> None:
        make_policy(action="require_sync", required_approvals=2)
        request = decide(open_request(), reviewer, "reviewer", "approve")
        assert request.status == "pending"
        assert journal("approval.vote_recorded")[-1].payload["approvals"] == 1
        with pytest.raises(Conflict):
            decide(request, reviewer, "reviewer", "approve")  # the same person twice does not count
        request = decide(request, reviewer2, "reviewer", "approve")
        assert request.status == "approved"
        assert journal("approval.decided")[-1].payload["approvals"] == 2

    def test_an_edit_needs_fresh_approvals(self, reviewer: Any, reviewer2: Any, admin_user: Any) -> None:
        make_policy(action="require_sync", required_approvals=2)
        request = decide(open_request(), reviewer, "reviewer", "approve")
        edited = {**request.arguments, "subject": "Re: Salesforce"}
        request = decide(request, reviewer2, "reviewer", "approve", arguments=edited)
        assert request.status == "pending"  # reviewer approved the old arguments only
        request = decide(request, reviewer, "reviewer", "approve")
        assert request.status == "approved" and request.final_arguments == edited


@pytest.mark.usefixtures("in_acme")
class TestEditAndApprove:
    def test_the_edit_is_recorded_and_the_runtime_gets_the_edited_arguments(self, reviewer: Any) -> None:
        request = open_request()
        original = dict(request.arguments)
        edited = {**original, "body": "Hi Sarah, the connector ships Monday."}
        request = decide(request, reviewer, "reviewer", "approve", arguments=edited, comment="Softer wording.")
        assert request.arguments == original and request.edited_arguments == edited
        event = request.events.get(kind="approve")
        assert event.edited and event.arguments == edited
        entry = journal("approval.decided")[-1]
        assert entry.payload["edited"] is True
        assert entry.payload["arguments"] == edited and entry.payload["original_arguments"] == original
        outcome = request_outcome(request.pk)
        assert outcome.status == "approved" and outcome.edited and outcome.arguments == edited

    def test_resubmitting_the_same_arguments_is_not_an_edit(self, reviewer: Any) -> None:
        request = open_request()
        request = decide(request, reviewer, "reviewer", "approve", arguments=dict(request.arguments))
        assert request.edited_arguments is None

    def test_arguments_can_only_be_edited_when_approving(self, reviewer: Any) -> None:
        with pytest.raises(ValidationFailed):
            decide(open_request(), reviewer, "reviewer", "deny", arguments={"to": []})

    def test_edits_the_tool_would_reject_are_refused(self, reviewer: Any) -> None:
        def validator(tool: str, arguments: dict[str, Any]) -> list[str]:
            return ["to: must be a list"] if not isinstance(arguments.get("to"), list) else []

        registry.register_argument_validator(validator)
        try:
            request = open_request()
            with pytest.raises(ValidationFailed) as caught:
                decide(request, reviewer, "reviewer", "approve", arguments={**request.arguments, "to": "x"})
            assert "to: must be a list" in caught.value.details["arguments"]
        finally:
            registry._validators.remove(validator)


def test_reviewers_are_notified_by_email_but_not_the_mission_starter(
    acme: Workspace, reviewer: Any, reviewer2: Any, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mail.outbox.clear()
    with workspace_schema(acme), django_capture_on_commit_callbacks(execute=True):
        make_policy(action="require_sync", approver_roles=["reviewer"])
        open_request(started_by_user_id=reviewer.pk)
    recipients = sorted(address for message in mail.outbox for address in message.to)
    assert recipients == [reviewer2.email]
    assert "send_email" in mail.outbox[0].subject
    assert "/w/acme/inbox/" in mail.outbox[0].body
