from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from apps.core.money import from_usd, to_usd
from apps.core.serializers import StrictSerializer

from .models import Budget, EntryKind, LedgerEntry, Mode, Scope, Window
from .selectors import CSV_COLUMNS


class BudgetSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    limit_usd = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope",
            "scope_id",
            "window",
            "mode",
            "limit_microusd",
            "limit_usd",
            "warn_percent",
            "block_percent",
            "is_active",
            "current",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_limit_usd(self, obj: Budget) -> str:
        return str(to_usd(obj.limit_microusd))

    def get_current(self, obj: Budget) -> dict[str, Any] | None:
        """Spend and holds in the window a call would count against now (null for per-mission
        windows of a crew, agent or workspace budget)."""
        current = (self.context.get("current") or {}).get(obj.pk)
        return current.as_dict() if current is not None else None


class _LimitMixin:
    def _limit(self, attrs: dict[str, Any], *, required: bool) -> dict[str, Any]:
        usd = attrs.pop("limit_usd", None)
        micros = attrs.get("limit_microusd")
        if usd is not None and micros is not None:
            raise serializers.ValidationError({"limit_usd": ["Give limit_usd or limit_microusd, not both."]})
        if usd is not None:
            try:
                attrs["limit_microusd"] = from_usd(usd)
            except ValueError as exc:
                raise serializers.ValidationError({"limit_usd": [str(exc)]}) from exc
        if required and attrs.get("limit_microusd") is None:
            raise serializers.ValidationError({"limit_usd": ["Give limit_usd (dollars) or limit_microusd."]})
        return attrs


class BudgetCreateSerializer(_LimitMixin, StrictSerializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=Scope.choices)
    scope_id = serializers.UUIDField(required=False, allow_null=True)
    window = serializers.ChoiceField(choices=Window.choices)
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.HARD)
    limit_usd = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), required=False)
    limit_microusd = serializers.IntegerField(min_value=1, required=False)
    warn_percent = serializers.IntegerField(min_value=1, max_value=1000, required=False, allow_null=True)
    block_percent = serializers.IntegerField(min_value=1, max_value=1000, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return self._limit(attrs, required=True)


class BudgetUpdateSerializer(_LimitMixin, StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    window = serializers.ChoiceField(choices=Window.choices, required=False)
    mode = serializers.ChoiceField(choices=Mode.choices, required=False)
    limit_usd = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), required=False)
    limit_microusd = serializers.IntegerField(min_value=1, required=False)
    warn_percent = serializers.IntegerField(min_value=1, max_value=1000, required=False, allow_null=True)
    block_percent = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return self._limit(attrs, required=False)


class LedgerEntrySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    amount_usd = serializers.SerializerMethodField()

    class Meta:
        model = LedgerEntry
        # The API and the CSV export show the same columns, declared once.
        fields = list(CSV_COLUMNS)
        read_only_fields = fields

    def get_amount_usd(self, obj: LedgerEntry) -> str:
        return str(to_usd(obj.amount_microusd))


class LedgerFilterSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=EntryKind.choices, required=False)
    model = serializers.CharField(required=False, max_length=100)
    crew_id = serializers.UUIDField(required=False)
    mission_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)
    request_id = serializers.CharField(required=False, max_length=64)
    budget_id = serializers.IntegerField(required=False, min_value=1)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    # pagination parameters pass through
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)


class SpendQuerySerializer(StrictSerializer):
    group_by = serializers.CharField(default="day", help_text="Comma-separated: crew, mission, agent, model, day.")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    crew_id = serializers.UUIDField(required=False)
    mission_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)
    model = serializers.CharField(required=False, max_length=100)
