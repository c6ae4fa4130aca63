"""Hooks: the vault's L4 escalation, the demo policy, the runtime's registry."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.approvals import demo, services
from apps.approvals.gate import gate, request_outcomes
from apps.approvals.integrations import vault_escalation
from apps.approvals.models import ApprovalRequest, Policy
from apps.tenants.models import Workspace
from apps.vault.escalation import EscalationRequest, escalation_handler

from .conftest import call_kwargs, decider_for, make_policy

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_acme")]


def l4(**overrides: Any) -> EscalationRequest:
    values: dict[str, Any] = {
        "workspace_schema": "w_acme",
        "secret_id": uuid.uuid4(),
        "secret_name": "prod-db-root",
        "secret_description": "Root password of the production database",
        "tier": "L4",
        "crew_id": uuid.uuid4(),
        "agent_id": uuid.uuid4(),
        "mission_id": uuid.uuid4(),
        "tool_name": "http_request",
        "intent": "rotate the reporting user's password",
        "request_id": None,
    }
    values.update(overrides)
    return EscalationRequest(**values)


class TestVaultEscalation:
    def test_the_handler_is_registered_at_start_up(self) -> None:
        assert escalation_handler() is vault_escalation

    def test_an_l4_request_becomes_one_approval_request_and_follows_its_decision(self, reviewer: Any) -> None:
        request = l4()
        first = vault_escalation(request)
        assert first.status == "pending"
        approval = ApprovalRequest.objects.get(pk=first.reference)
        assert approval.tool_name == "secret:prod-db-root" and approval.mode == "sync"
        assert approval.reasoning == "rotate the reporting user's password"
        assert vault_escalation(request).reference == first.reference  # asked again: same request
        services.request_decide(request_id=approval.pk, decider=decider_for(reviewer, "reviewer"), decision="approve")
        approved = vault_escalation(request)
        assert approved.status == "approved" and approved.decided_by == "acme-reviewer"

    def test_a_denial_comes_back_with_the_reviewers_words(self, reviewer: Any) -> None:
        request = l4()
        pending = vault_escalation(request)
        services.request_decide(
            request_id=pending.reference, decider=decider_for(reviewer, "reviewer"), decision="deny", comment="No root."
        )
        denied = vault_escalation(request)
        assert denied.status == "denied" and denied.reason == "No root."

    def test_an_allow_policy_cannot_waive_an_l4_approval(self) -> None:
        make_policy(tool_pattern="secret:*", action="allow")
        assert vault_escalation(l4()).status == "pending"

    def test_a_policy_names_who_approves_secrets_and_a_deny_policy_refuses(self, admin_user: Any) -> None:
        make_policy(
            name="secrets need admins",
            priority=1,
            tool_pattern="secret:prod-*",
            action="require_sync",
            approver_roles=["admin"],
        )
        pending = vault_escalation(l4())
        assert ApprovalRequest.objects.get(pk=pending.reference).approver_roles == ["admin"]
        make_policy(name="never", priority=0, tool_pattern="secret:prod-db-root", action="deny")
        assert vault_escalation(l4()).status == "denied"

    def test_requests_outside_a_mission_are_still_idempotent(self) -> None:
        request = l4(mission_id=None, crew_id=None, agent_id=None)
        assert vault_escalation(request).reference == vault_escalation(request).reference


def test_the_demo_policy_makes_send_email_wait_for_the_demo_reviewer(
    acme: Workspace, reviewer: Any, reviewer2: Any
) -> None:
    demo.seed(acme, {"rita": reviewer})
    demo.seed(acme, {"rita": reviewer})  # idempotent
    assert Policy.objects.filter(name=demo.DEMO_POLICY).count() == 1
    decision = gate(
        **call_kwargs(
            autonomy_level="guided", arguments={"to": ["sarah.chen@acme.example"], "subject": "s", "body": "b"}
        )
    )
    assert decision.action == "wait" and decision.policy_name == demo.DEMO_POLICY
    request = ApprovalRequest.objects.get(pk=decision.approval_request_id)
    assert request.approver_user_ids == [reviewer.pk] and request.approver_roles == []
    assert request.may_be_decided_by(role="reviewer", user_id=reviewer.pk)
    assert not request.may_be_decided_by(role="reviewer", user_id=reviewer2.pk)
    internal = gate(
        **call_kwargs(autonomy_level="full", arguments={"to": ["ops@acme.test"], "subject": "s", "body": "b"})
    )
    assert internal.action == "allow"


def test_request_outcomes_answers_many_in_one_query(django_assert_num_queries: Any) -> None:
    ids = [gate(**call_kwargs()).approval_request_id for _ in range(3)]
    with django_assert_num_queries(2):  # the schema's search path, then one SELECT
        outcomes = request_outcomes([*ids, uuid.uuid4(), "junk"])
    assert set(outcomes) == {str(i) for i in ids} and all(o.status == "pending" for o in outcomes.values())
