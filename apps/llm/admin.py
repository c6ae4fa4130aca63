"""Workspace admin for the gateway: default model, downgrade rules, and the call records."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.core.admin import AppendOnlyAdmin
from apps.core.admin_sites import workspace_admin_site
from apps.core.money import format_usd

from . import services
from .models import LlmCall, RoutingRule, WorkspaceLlmSettings


@admin.register(WorkspaceLlmSettings, site=workspace_admin_site)
class WorkspaceLlmSettingsAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["__str__", "updated_at"]
    fields = ["default_model", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not WorkspaceLlmSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: WorkspaceLlmSettings, form: Any, change: bool) -> None:
        services.workspace_llm_settings_update(default_model=obj.default_model)


@admin.register(RoutingRule, site=workspace_admin_site)
class RoutingRuleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "trigger_scope", "crew_id", "agent_id", "to_model", "priority", "is_active"]
    list_filter = ["trigger_scope", "is_active", "to_model"]
    search_fields = ["name", "to_model"]

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:
        fields = ("name", "to_model", "trigger_scope", "crew_id", "agent_id", "priority", "is_active")
        values = {name: getattr(obj, name) for name in fields}
        if change:
            services.routing_rule_update(rule=RoutingRule.objects.get(pk=obj.pk), **values)
        else:
            obj.pk = services.routing_rule_create(**values).pk

    def delete_model(self, request: HttpRequest, obj: RoutingRule) -> None:
        services.routing_rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for rule in queryset:
            services.routing_rule_delete(rule=rule)


@admin.register(LlmCall, site=workspace_admin_site)
class LlmCallAdmin(AppendOnlyAdmin):
    list_display = ["id", "created_at", "status", "model", "cost", "input_tokens", "output_tokens", "latency_ms",
                    "mission_id", "request_id"]  # fmt: skip
    list_filter = ["status", "model", "provider", "created_at"]
    search_fields = ["=request_id", "=mission_id", "=crew_id", "=agent_id"]
    date_hierarchy = "created_at"

    @admin.display(description="cost", ordering="cost_microusd")
    def cost(self, obj: LlmCall) -> str:
        return format_usd(obj.cost_microusd, 6)
