from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.serializers import StrictSerializer

from .models import Agent, Autonomy, Crew, Mission, MissionStatus


class CrewSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    agent_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Crew
        fields = [
            "id",
            "name",
            "purpose",
            "autonomy",
            "default_model",
            "http_allowlist",
            "max_steps",
            "max_wall_seconds",
            "settings",
            "is_active",
            "agent_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CrewCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    purpose = serializers.CharField(required=False, allow_blank=True, default="")
    autonomy = serializers.ChoiceField(choices=Autonomy.choices, default=Autonomy.GUIDED)
    default_model = serializers.CharField(max_length=100)
    http_allowlist = serializers.ListField(child=serializers.CharField(max_length=260), required=False, default=list)
    max_steps = serializers.IntegerField(min_value=1, max_value=10_000, required=False, default=30)
    max_wall_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False, default=900)
    settings = serializers.DictField(required=False, default=dict)


class CrewUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    purpose = serializers.CharField(required=False, allow_blank=True)
    autonomy = serializers.ChoiceField(choices=Autonomy.choices, required=False)
    default_model = serializers.CharField(max_length=100, required=False)
    http_allowlist = serializers.ListField(child=serializers.CharField(max_length=260), required=False)
    max_steps = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    max_wall_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)
    settings = serializers.DictField(required=False)
    is_active = serializers.BooleanField(required=False)


class AgentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    crew_name = serializers.CharField(source="crew.name", read_only=True)
    effective_model = serializers.CharField(source="model_name", read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "crew",
            "crew_name",
            "name",
            "role",
            "instructions",
            "model",
            "effective_model",
            "tools",
            "settings",
            "position",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentCreateSerializer(StrictSerializer):
    crew = serializers.UUIDField()
    name = serializers.CharField(max_length=100)
    role = serializers.CharField(max_length=100)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    tools = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    settings = serializers.DictField(required=False, default=dict)
    position = serializers.IntegerField(min_value=0, max_value=1000, required=False)


class AgentUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    role = serializers.CharField(max_length=100, required=False)
    instructions = serializers.CharField(required=False, allow_blank=True)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tools = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    settings = serializers.DictField(required=False)
    position = serializers.IntegerField(min_value=0, max_value=1000, required=False)


class MissionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    crew_name = serializers.CharField(source="crew.name", read_only=True)
    current_agent_name = serializers.SerializerMethodField()
    cost_microusd = serializers.IntegerField(source="cost_micros", read_only=True)

    class Meta:
        model = Mission
        fields = [
            "id",
            "crew",
            "crew_name",
            "goal",
            "status",
            "control",
            "steps",
            "model_calls",
            "tool_calls",
            "cost_microusd",
            "current_agent",
            "current_agent_name",
            "waiting_on",
            "forked_from",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_current_agent_name(self, obj: Mission) -> str | None:
        return obj.current_agent.name if obj.current_agent_id and obj.current_agent else None


class TrajectorySerializer(serializers.Serializer):  # type: ignore[type-arg]
    messages = serializers.ListField(child=serializers.DictField())
    tool_calls = serializers.ListField(child=serializers.DictField())
    checkpoints = serializers.ListField(child=serializers.DictField(), required=False)


class MissionDetailSerializer(MissionSerializer):
    trajectory = serializers.SerializerMethodField()

    class Meta(MissionSerializer.Meta):
        fields = [
            *MissionSerializer.Meta.fields,
            "input",
            "result",
            "error",
            "halt_reason",
            "max_steps",
            "max_wall_seconds",
            "running_seconds",
            "attempts",
            "fork_checkpoint_id",
            "created_by",
            "trajectory",
        ]
        read_only_fields = fields

    def get_trajectory(self, obj: Mission) -> dict[str, Any]:
        return self.context.get("trajectory") or {}


class MissionCreateSerializer(StrictSerializer):
    crew = serializers.UUIDField()
    goal = serializers.CharField(max_length=5000)
    input = serializers.DictField(required=False, default=dict)
    max_steps = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    max_wall_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)


class MissionForkSerializer(StrictSerializer):
    step = serializers.IntegerField(min_value=0, required=False, help_text="Continue after this step.")
    from_seq = serializers.IntegerField(
        min_value=1, required=False, help_text="Continue from this journal entry of the mission."
    )
    checkpoint_id = serializers.CharField(max_length=100, required=False, help_text="Continue from this checkpoint.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len([k for k in ("step", "from_seq", "checkpoint_id") if k in attrs]) > 1:
            raise serializers.ValidationError("Give at most one of step, from_seq and checkpoint_id.")
        return attrs


class MissionFilterSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=MissionStatus.choices, required=False)
    crew = serializers.UUIDField(required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)


class ToolSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.DictField()
    credentials = serializers.ListField(child=serializers.CharField())
    side_effects = serializers.BooleanField()
