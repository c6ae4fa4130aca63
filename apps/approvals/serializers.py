from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.permissions import Role
from apps.core.serializers import StrictSerializer

from .models import (
    MAX_REQUIRED_APPROVALS,
    ApprovalEvent,
    ApprovalRequest,
    AutonomyLevel,
    FinalTimeoutAction,
    Policy,
    PolicyAction,
    TimeoutAction,
)
from .services import POLICY_FIELDS


class PolicySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Policy
        # The editable fields are declared once, by the service that writes them.
        fields = ["id", *POLICY_FIELDS, "version", "created_at", "updated_at", "updated_by"]
        read_only_fields = fields


class PolicyWriteSerializer(StrictSerializer):
    """Fields a client may set. On PATCH only the fields sent change; the model validates the
    combination (escalation needs roles and a timeout, conditions must parse...)."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(allow_blank=True, required=False)
    enabled = serializers.BooleanField(required=False)
    priority = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    tool_pattern = serializers.CharField(max_length=200, required=False)
    conditions = serializers.ListField(child=serializers.DictField(), required=False, max_length=20)
    min_estimated_cost_microusd = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    side_effects_only = serializers.BooleanField(required=False)
    crew_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=200)
    agent_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=200)
    action = serializers.ChoiceField(choices=PolicyAction.choices, required=False)
    approver_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    approver_user_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=200
    )
    required_approvals = serializers.IntegerField(min_value=1, max_value=MAX_REQUIRED_APPROVALS, required=False)
    segregation_of_duties = serializers.BooleanField(required=False)
    timeout_seconds = serializers.IntegerField(min_value=1, required=False)
    timeout_action = serializers.ChoiceField(choices=TimeoutAction.choices, required=False)
    escalate_to_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    escalation_timeout_seconds = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    escalation_timeout_action = serializers.ChoiceField(choices=FinalTimeoutAction.choices, required=False)

    def to_internal_value(self, data: Any) -> Any:
        values = super().to_internal_value(data)
        for key in ("crew_ids", "agent_ids"):
            if key in values:
                values[key] = [str(item) for item in values[key]]
        return values


class DryRunSerializer(StrictSerializer):
    tool_name = serializers.CharField(max_length=200)
    arguments = serializers.DictField(required=False, default=dict)
    has_side_effects = serializers.BooleanField(required=False, default=True)
    estimated_cost_microusd = serializers.IntegerField(min_value=0, required=False, default=0)
    crew_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    agent_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    autonomy_level = serializers.ChoiceField(
        choices=AutonomyLevel.choices, required=False, default=AutonomyLevel.STRICT
    )


class PolicyTraceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    policy_id = serializers.UUIDField()
    name = serializers.CharField()
    priority = serializers.IntegerField()
    action = serializers.CharField()
    matched = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class DryRunResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    action = serializers.CharField(help_text="allow, deny, require_sync or require_async")
    gate_action = serializers.CharField(help_text="What the gate would answer: allow, deny, wait or queue")
    source = serializers.CharField(help_text="policy, or autonomy when no policy matched")  # type: ignore[assignment]
    reason = serializers.CharField()
    policy = serializers.DictField(allow_null=True)
    approval = serializers.DictField(allow_null=True)
    trace = PolicyTraceSerializer(many=True)


class ApprovalEventSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = ApprovalEvent
        fields = [
            "kind",
            "actor_kind",
            "actor_label",
            "user_id",
            "comment",
            "arguments",
            "edited",
            "details",
            "created_at",
        ]
        read_only_fields = fields


class ApprovalRequestSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    final_arguments = serializers.JSONField(read_only=True)
    policy_name = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "status",
            "resolution",
            "mode",
            "tool_name",
            "tool_call_id",
            "mission_id",
            "crew_id",
            "agent_id",
            "crew_name",
            "agent_name",
            "mission_goal",
            "mission_cost_microusd",
            "estimated_cost_microusd",
            "reasoning",
            "arguments",
            "edited_arguments",
            "final_arguments",
            "diff",
            "policy_id",
            "policy_name",
            "match_reason",
            "approver_roles",
            "approver_user_ids",
            "required_approvals",
            "segregation_of_duties",
            "started_by_user_id",
            "deadline",
            "timeout_action",
            "escalation_level",
            "escalated_at",
            "decided_at",
            "decided_by_label",
            "decision_comment",
            "executed_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_policy_name(self, obj: ApprovalRequest) -> str:
        return str(obj.policy_snapshot.get("name", ""))


class ApprovalRequestDetailSerializer(ApprovalRequestSerializer):
    events = ApprovalEventSerializer(many=True, read_only=True)

    class Meta(ApprovalRequestSerializer.Meta):
        fields = [*ApprovalRequestSerializer.Meta.fields, "events"]
        read_only_fields = fields


class DecideSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=["approve", "deny", "comment"])
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    arguments = serializers.DictField(required=False, help_text="Edited arguments (approve only).")
