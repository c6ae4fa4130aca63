"""Policies: first match by priority, each test of a policy, autonomy defaults, the journal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.approvals import services
from apps.approvals.matching import ToolCall
from apps.approvals.models import Policy
from apps.core.errors import ValidationFailed
from apps.tenants.models import Workspace

from .conftest import journal, make_policy

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_acme")]


def evaluate(**call: Any) -> services.Evaluation:  # type: ignore[name-defined]
    defaults: dict[str, Any] = {"tool_name": "send_email", "arguments": {}, "autonomy_level": "full"}
    return services.policy_evaluate(call=ToolCall(**{**defaults, **call}), full_trace=True)


class TestFirstMatchByPriority:
    def test_lowest_priority_number_wins(self) -> None:
        make_policy(name="late", priority=50, tool_pattern="send_*", action="allow")
        make_policy(name="early", priority=5, tool_pattern="send_email", action="deny")
        result = evaluate()
        assert result.policy is not None and result.policy.name == "early"
        assert result.gate_action == "deny"
        assert [t.name for t in result.trace] == ["early", "late"]  # the dry run explains both

    def test_a_policy_that_does_not_match_falls_through(self) -> None:
        make_policy(
            name="prod only", priority=1, conditions=[{"path": "env", "op": "eq", "value": "prod"}], action="deny"
        )
        make_policy(name="catch all", priority=2, action="allow")
        result = evaluate(arguments={"env": "dev"})
        assert result.policy is not None and result.policy.name == "catch all"
        assert result.trace[0].matched is False
        assert "not" in result.trace[0].reasons[-1]

    def test_disabled_policies_are_skipped(self) -> None:
        make_policy(name="off", priority=1, action="deny", enabled=False)
        assert evaluate().source == "autonomy"

    def test_equal_priorities_fall_back_to_the_older_policy(self) -> None:
        make_policy(name="first", priority=7, action="allow")
        make_policy(name="second", priority=7, action="deny")
        assert evaluate().policy.name == "first"  # type: ignore[union-attr]


class TestWhatAPolicyMatches:
    def test_tool_name_pattern_with_alternatives(self) -> None:
        make_policy(tool_pattern="delete_*|drop_*", action="deny")
        assert evaluate(tool_name="drop_table").gate_action == "deny"
        assert evaluate(tool_name="send_email").source == "autonomy"

    def test_recipient_outside_the_workspace_domains(self) -> None:
        make_policy(conditions=[{"path": "to", "op": "outside_domains"}], action="require_sync")
        assert evaluate(arguments={"to": ["x@customer.example"]}).gate_action == "wait"
        assert evaluate(arguments={"to": ["x@acme.test"]}).source == "autonomy"  # acme's domain

    def test_env_is_prod(self) -> None:
        make_policy(tool_pattern="*", conditions=[{"path": "env", "op": "eq", "value": "prod"}], action="require_async")
        assert evaluate(tool_name="deploy", arguments={"env": "prod"}).gate_action == "queue"

    def test_amount_above_a_value(self) -> None:
        make_policy(
            tool_pattern="refund", conditions=[{"path": "amount", "op": "gt", "value": 500}], action="require_sync"
        )
        assert evaluate(tool_name="refund", arguments={"amount": 501}).gate_action == "wait"
        assert evaluate(tool_name="refund", arguments={"amount": 20}).gate_action == "allow"

    def test_estimated_cost(self) -> None:
        make_policy(tool_pattern="*", min_estimated_cost_microusd=1_000_000, action="require_sync")
        assert evaluate(estimated_cost_microusd=1_000_000).gate_action == "wait"
        result = evaluate(estimated_cost_microusd=999_999)
        assert result.gate_action == "allow"
        assert "below" in result.trace[0].reasons[-1]

    def test_crew_and_agent(self) -> None:
        crew, agent = uuid.uuid4(), uuid.uuid4()
        make_policy(crew_ids=[str(crew)], agent_ids=[str(agent)], action="deny")
        assert evaluate(crew_id=crew, agent_id=agent).gate_action == "deny"
        assert evaluate(crew_id=crew, agent_id=uuid.uuid4()).source == "autonomy"
        assert evaluate(crew_id=uuid.uuid4(), agent_id=agent).source == "autonomy"

    def test_side_effects_only(self) -> None:
        make_policy(tool_pattern="*", side_effects_only=True, action="deny")
        assert evaluate(tool_name="crm_lookup", has_side_effects=False).source == "autonomy"
        assert evaluate(tool_name="crm_lookup", has_side_effects=True).gate_action == "deny"


class TestAutonomyDefaults:
    @pytest.mark.parametrize(
        ("level", "arguments", "expected"),
        [
            ("strict", {"to": ["a@acme.test"]}, "wait"),
            ("guided", {"to": ["a@customer.example"]}, "wait"),
            ("guided", {"to": ["a@acme.test"]}, "queue"),
            ("trusted", {"to": ["a@customer.example"]}, "queue"),
            ("trusted", {"to": ["a@acme.test"]}, "allow"),
            ("full", {"to": ["a@customer.example"]}, "allow"),
            ("no-such-level", {"to": ["a@acme.test"]}, "wait"),  # fails closed: strict
        ],
    )
    def test_side_effecting_tools(self, level: str, arguments: dict[str, Any], expected: str) -> None:
        result = evaluate(autonomy_level=level, arguments=arguments, has_side_effects=True)
        assert result.source == "autonomy"
        assert result.gate_action == expected
        assert "no policy matched" in result.reason

    @pytest.mark.parametrize("level", ["strict", "guided", "trusted", "full"])
    def test_tools_without_side_effects_are_allowed(self, level: str) -> None:
        assert evaluate(autonomy_level=level, has_side_effects=False).gate_action == "allow"

    def test_default_approval_is_any_deciding_role_with_segregation_of_duties(self) -> None:
        result = evaluate(autonomy_level="strict")
        assert result.approval is not None
        assert result.approval.approver_roles == ["admin", "owner", "reviewer"]
        assert result.approval.segregation_of_duties and result.approval.required_approvals == 1
        assert result.approval.timeout_action == "deny"

    def test_a_policy_overrides_the_autonomy_default(self) -> None:
        make_policy(tool_pattern="send_email", action="allow")
        assert evaluate(autonomy_level="strict").gate_action == "allow"


class TestEditingPolicies:
    def test_create_update_delete_are_journaled_with_their_author(self, as_admin: Any) -> None:
        policy = make_policy(name="refunds", tool_pattern="refund", action="require_sync")
        created = journal("policy.created")[-1]
        assert created.actor_label == "acme-admin"
        assert created.payload["policy"]["tool_pattern"] == "refund"

        policy = services.policy_update(policy=policy, fields={"required_approvals": 2, "action": "require_async"})
        assert policy.version == 2 and policy.updated_by == "acme-admin"
        updated = journal("policy.updated")[-1]
        assert updated.payload["changes"] == {"required_approvals": [1, 2], "action": ["require_sync", "require_async"]}
        assert updated.actor_label == "acme-admin"

        services.policy_delete(policy=policy)
        assert journal("policy.deleted")[-1].payload["name"] == "refunds"
        assert not Policy.objects.filter(name="refunds").exists()

    def test_an_update_that_changes_nothing_is_not_journaled(self) -> None:
        policy = make_policy()
        before = len(journal("policy.updated"))
        services.policy_update(policy=policy, fields={"priority": policy.priority})
        assert len(journal("policy.updated")) == before

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"conditions": [{"path": "x", "op": "nope"}]}, "conditions"),
            ({"approver_roles": ["viewer"]}, "approver_roles"),
            ({"timeout_action": "escalate"}, "escalate_to_roles"),
            ({"timeout_seconds": 1}, "timeout_seconds"),
            ({"tool_pattern": " | "}, "tool_pattern"),
            ({"crew_ids": ["not-a-uuid"]}, "crew_ids"),
            ({"no_such_field": 1}, "no_such_field"),
        ],
    )
    def test_invalid_policies_are_refused_naming_the_field(self, fields: dict[str, Any], field: str) -> None:
        with pytest.raises(ValidationFailed) as caught:
            make_policy(**fields)
        assert field in caught.value.details

    def test_approval_policy_without_approvers_names_every_deciding_role(self) -> None:
        policy = make_policy(action="require_sync")
        assert policy.approver_roles == ["admin", "owner", "reviewer"]


def test_workspace_domains_come_from_the_workspace(acme: Workspace) -> None:
    make_policy(conditions=[{"path": "to", "op": "outside_domains"}], action="deny")
    assert acme.email_domains == ["acme.test"]
    assert evaluate(arguments={"to": "ceo@acme.test"}).source == "autonomy"
