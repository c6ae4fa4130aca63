from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.money import to_usd
from apps.core.serializers import StrictSerializer

from .catalog.selectors import ResolvedModel
from .models import CallStatus, LlmCall, RoutingRule, TriggerScope


class CatalogModelSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A routable model with the price a call would be charged at now (micro-USD per MTok)."""

    model_id = serializers.CharField()
    display_name = serializers.CharField()
    provider = serializers.CharField()
    tier = serializers.CharField()
    context_window = serializers.IntegerField()
    max_output_tokens = serializers.IntegerField()
    fallbacks = serializers.ListField(child=serializers.CharField())
    price = serializers.SerializerMethodField()

    def get_price(self, obj: ResolvedModel) -> dict[str, Any]:
        price = obj.price
        return {
            "id": price.id,
            "version": price.version,
            "input_per_mtok_microusd": price.input_per_mtok,
            "output_per_mtok_microusd": price.output_per_mtok,
            "cache_read_per_mtok_microusd": price.cache_read_per_mtok,
            "cache_write_per_mtok_microusd": price.cache_write_per_mtok,
            "input_per_mtok_usd": str(to_usd(price.input_per_mtok)),
            "output_per_mtok_usd": str(to_usd(price.output_per_mtok)),
        }


class LlmSettingsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    default_model = serializers.CharField(allow_blank=True)
    effective_default_model = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class LlmSettingsUpdateSerializer(StrictSerializer):
    default_model = serializers.CharField(allow_blank=True, max_length=100)


class RoutingRuleSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = RoutingRule
        fields = ["id", "name", "trigger_scope", "crew_id", "agent_id", "to_model", "priority", "is_active",
                  "created_at", "updated_at"]  # fmt: skip
        read_only_fields = fields


class RoutingRuleWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    to_model = serializers.CharField(max_length=100)
    trigger_scope = serializers.ChoiceField(choices=TriggerScope.choices, default=TriggerScope.ANY)
    crew_id = serializers.UUIDField(required=False, allow_null=True)
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    priority = serializers.IntegerField(min_value=0, max_value=32767, default=100)
    is_active = serializers.BooleanField(default=True)


class RoutingRuleUpdateSerializer(RoutingRuleWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class LlmCallSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = LlmCall
        fields = ["id", "request_id", "status", "crew_id", "mission_id", "agent_id", "model", "provider",
                  "route_reason", "reservation_id", "attempts", "stop_reason", "input_tokens", "output_tokens",
                  "cache_read_tokens", "cache_write_tokens", "cost_microusd", "latency_ms", "error", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = fields


class LlmCallFilterSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=CallStatus.choices, required=False)
    model = serializers.CharField(required=False, max_length=100)
    crew_id = serializers.UUIDField(required=False)
    mission_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)
    request_id = serializers.CharField(required=False, max_length=64)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)
