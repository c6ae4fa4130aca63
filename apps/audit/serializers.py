from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.serializers import StrictSerializer

from .catalog import EntryKind, Severity
from .models import JournalCheckpoint, JournalEntry, MissionFork, RetentionPolicy
from .selectors import JournalFilters

ACTOR_KINDS = ["user", "api_key", "agent", "system"]


class ActorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    kind = serializers.ChoiceField(choices=ACTOR_KINDS)
    id = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]


class JournalEntrySerializer(serializers.Serializer):  # type: ignore[type-arg]
    seq = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.choices)
    actor = ActorSerializer()
    crew_id = serializers.UUIDField(allow_null=True)
    mission_id = serializers.UUIDField(allow_null=True)
    agent_id = serializers.UUIDField(allow_null=True)
    request_id = serializers.CharField(allow_null=True)
    payload = serializers.JSONField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()

    def to_representation(self, instance: JournalEntry) -> dict[str, Any]:
        # The same wire format as the export and the live tail.
        return instance.as_dict()


class JournalQuerySerializer(StrictSerializer):
    mission = serializers.UUIDField(required=False)
    crew = serializers.UUIDField(required=False)
    agent = serializers.UUIDField(required=False)
    kind = serializers.CharField(
        required=False, max_length=500, help_text="Comma-separated kinds; 'llm.*' matches every llm kind."
    )
    severity = serializers.CharField(required=False, max_length=100, help_text="Comma-separated severities.")
    min_severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    actor_kind = serializers.ChoiceField(choices=ACTOR_KINDS, required=False)
    actor_id = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    after_seq = serializers.IntegerField(required=False, min_value=0)
    before_seq = serializers.IntegerField(required=False, min_value=1)
    q = serializers.CharField(required=False, max_length=200, help_text="Full-text search over payload values.")

    def validate_severity(self, value: str) -> list[str]:
        severities = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [s for s in severities if s not in Severity.values]
        if unknown:
            raise serializers.ValidationError(f"Unknown severities: {', '.join(unknown)}.")
        return severities

    def validate_kind(self, value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]

    def filters(self) -> JournalFilters:
        data = self.validated_data
        return JournalFilters(
            mission_id=data.get("mission"),
            crew_id=data.get("crew"),
            agent_id=data.get("agent"),
            kinds=tuple(data.get("kind") or ()),
            severities=tuple(data.get("severity") or ()),
            min_severity=data.get("min_severity"),
            actor_kind=data.get("actor_kind"),
            actor_id=data.get("actor_id"),
            since=data.get("since"),
            until=data.get("until"),
            after_seq=data.get("after_seq"),
            before_seq=data.get("before_seq"),
            q=data.get("q"),
        )


class EntryKindSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    severity = serializers.CharField()
    required = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]
    optional = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    description = serializers.CharField()

    def to_representation(self, instance: EntryKind) -> dict[str, Any]:
        def names(spec: Any) -> list[str]:
            return ["null" if t is type(None) else t.__name__ for t in (spec if isinstance(spec, tuple) else (spec,))]

        return {
            "name": instance.name,
            "severity": instance.severity,
            "required": {key: names(spec) for key, spec in instance.required.items()},
            "optional": {key: names(spec) for key, spec in instance.optional.items()},
            "description": instance.description,
        }


class CheckpointSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = JournalCheckpoint
        fields = ["id", "seq", "hash", "created_at", "reason", "signature"]
        read_only_fields = fields


class CheckpointCreateSerializer(StrictSerializer):
    pass


class RetentionPolicySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = RetentionPolicy
        fields = ["severity", "keep_days", "updated_at"]
        read_only_fields = fields


class RetentionPolicySetSerializer(StrictSerializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    keep_days = serializers.IntegerField(min_value=1, allow_null=True, help_text="Days; null keeps forever.")


class CompactSerializer(StrictSerializer):
    up_to_seq = serializers.IntegerField(required=False, min_value=1)


class CompactionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    summary_seq = serializers.IntegerField()
    removed = serializers.IntegerField()
    from_seq = serializers.IntegerField()
    to_seq = serializers.IntegerField()
    checkpoint_seq = serializers.IntegerField(allow_null=True)


class VerifySerializer(serializers.Serializer):  # type: ignore[type-arg]
    schema = serializers.CharField()
    ok = serializers.BooleanField()
    entries = serializers.IntegerField()
    head_seq = serializers.IntegerField()
    checkpoints = serializers.IntegerField()
    compacted_runs = serializers.IntegerField()
    first_bad_seq = serializers.IntegerField(allow_null=True)
    problems = serializers.ListField(child=serializers.DictField())
    seconds = serializers.FloatField()


class ReplayQuerySerializer(StrictSerializer):
    up_to = serializers.IntegerField(required=False, min_value=1)


class ReplaySerializer(serializers.Serializer):  # type: ignore[type-arg]
    mission_id = serializers.UUIDField()
    crew_id = serializers.UUIDField(allow_null=True)
    goal = serializers.CharField(allow_null=True)
    input = serializers.JSONField(allow_null=True)
    status = serializers.CharField()
    output = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    messages = serializers.ListField(child=serializers.DictField())
    tool_calls = serializers.ListField(child=serializers.DictField())
    approvals = serializers.ListField(child=serializers.DictField())
    cost_microusd = serializers.IntegerField()
    usage = serializers.DictField(child=serializers.IntegerField())
    llm_calls = serializers.IntegerField()
    forked_from = serializers.DictField(allow_null=True)
    first_seq = serializers.IntegerField(allow_null=True)
    last_seq = serializers.IntegerField(allow_null=True)
    entries = serializers.IntegerField()


class ForkSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = MissionFork
        fields = ["id", "source_mission_id", "from_seq", "new_mission_id", "entry_seq", "created_at", "reason"]
        read_only_fields = fields


class ForkCreateSerializer(StrictSerializer):
    from_seq = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    new_mission_id = serializers.UUIDField(required=False)
