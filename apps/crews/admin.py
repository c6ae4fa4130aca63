"""Workspace admin (/w/<slug>/admin/): crews and agents are edited through the services (so each
change is journaled with the super-admin who made it); missions show status and cost, with
actions to cancel, pause, resume and retry; tool calls and messages are read-only records."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.core.admin import AppendOnlyAdmin, EstimatedCountPaginator
from apps.core.admin_sites import workspace_admin_site
from apps.core.context import acting_as, user_actor
from apps.core.errors import QuarterdeckError
from apps.core.money import format_usd

from . import services
from .models import Agent, Crew, CrmAccount, CrmChange, CrmChangeStatus, Mission, MissionMessage, ToolCall

CREW_FIELDS = ["name", "purpose", "autonomy", "default_model", "http_allowlist", "max_steps", "max_wall_seconds"]


def _run(request: HttpRequest, admin_obj: admin.ModelAdmin[Any], label: str, func: Any, objects: Any) -> None:
    done, failed = 0, []
    with acting_as(user_actor(request.user)):
        for obj in objects:
            try:
                func(obj)
                done += 1
            except QuarterdeckError as exc:
                failed.append(f"{obj}: {exc.message}")
    if done:
        admin_obj.message_user(request, f"{label}: {done} mission(s).", messages.SUCCESS)
    for line in failed:
        admin_obj.message_user(request, line, messages.WARNING)


class AgentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Agent
    extra = 0
    fields = ["name", "role", "model", "tools", "position"]
    readonly_fields = ["name", "role", "model", "tools", "position"]
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Crew, site=workspace_admin_site)
class CrewAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "autonomy", "default_model", "max_steps", "is_active", "updated_at"]
    list_filter = ["autonomy", "is_active"]
    search_fields = ["name", "purpose"]
    fields = [*CREW_FIELDS, "settings", "is_active", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [AgentInline]

    def save_model(self, request: HttpRequest, obj: Crew, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        with acting_as(user_actor(request.user)):
            if change:
                saved = services.crew_update(crew=Crew.objects.get(pk=obj.pk), **data)
            else:
                fields = {
                    name: form.cleaned_data[name] for name in [*CREW_FIELDS, "settings"] if name in form.cleaned_data
                }
                saved = services.crew_create(**fields)
                if not form.cleaned_data.get("is_active", True):
                    saved = services.crew_update(crew=saved, is_active=False)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # missions keep their crew; deactivate instead


@admin.register(Agent, site=workspace_admin_site)
class AgentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "crew", "role", "model", "position"]
    list_filter = ["crew"]
    list_select_related = ["crew"]
    search_fields = ["name", "role", "crew__name"]
    fields = ["crew", "name", "role", "instructions", "model", "tools", "settings", "position"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["crew"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        with acting_as(user_actor(request.user)):
            if change:
                data = {n: form.cleaned_data[n] for n in form.changed_data if n in services.AGENT_EDITABLE}
                saved = services.agent_update(agent=Agent.objects.get(pk=obj.pk), **data)
            else:
                data = {n: form.cleaned_data[n] for n in form.cleaned_data if n in services.AGENT_EDITABLE}
                saved = services.agent_create(crew=form.cleaned_data["crew"], **data)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MissionMessageInline(admin.TabularInline):  # type: ignore[type-arg]
    model = MissionMessage
    extra = 0
    fields = ["seq", "role", "agent", "content", "tool_calls", "model", "cost_micros"]
    readonly_fields = ["seq", "role", "agent", "content", "tool_calls", "model", "cost_micros"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Mission, site=workspace_admin_site)
class MissionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["goal_short", "crew", "status", "control", "steps", "cost", "claimed_by", "created_at", "page"]
    list_filter = ["status", "crew", "control"]
    list_select_related = ["crew"]
    search_fields = ["goal", "id"]
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["cancel", "pause", "resume", "retry"]
    inlines = [MissionMessageInline]
    readonly_fields = [f.name for f in Mission._meta.fields]

    @admin.display(description="goal", ordering="goal")
    def goal_short(self, obj: Mission) -> str:
        return obj.goal[:80]

    @admin.display(description="cost", ordering="cost_micros")
    def cost(self, obj: Mission) -> str:
        return format_usd(obj.cost_micros, 4)

    @admin.display(description="")
    def page(self, obj: Mission) -> str:
        return format_html('<a href="{}">timeline</a>', reverse("crews:mission-detail", kwargs={"mission_id": obj.pk}))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # missions start from the portal or the API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Cancel (at the next step)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Mission]) -> None:
        _run(request, self, "Cancel requested", lambda m: services.mission_cancel(mission=m), queryset)

    @admin.action(description="Pause (at the next step)")
    def pause(self, request: HttpRequest, queryset: QuerySet[Mission]) -> None:
        _run(request, self, "Pause requested", lambda m: services.mission_pause(mission=m), queryset)

    @admin.action(description="Resume paused missions")
    def resume(self, request: HttpRequest, queryset: QuerySet[Mission]) -> None:
        _run(request, self, "Resumed", lambda m: services.mission_resume(mission=m), queryset)

    @admin.action(description="Retry failed or cancelled missions from their last checkpoint")
    def retry(self, request: HttpRequest, queryset: QuerySet[Mission]) -> None:
        _run(request, self, "Queued again", lambda m: services.mission_retry(mission=m), queryset)


@admin.register(ToolCall, site=workspace_admin_site)
class ToolCallAdmin(AppendOnlyAdmin):
    list_display = ["tool", "status", "mission", "agent", "tool_call_id", "approval_request_id", "created_at"]
    list_filter = ["status", "tool", "side_effects", "queued"]
    list_select_related = ["mission", "agent"]
    search_fields = ["tool_call_id", "tool", "approval_request_id"]


@admin.register(CrmAccount, site=workspace_admin_site)
class CrmAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "domain", "stage", "plan", "owner_email", "updated_at"]
    list_filter = ["stage"]
    search_fields = ["name", "domain", "notes"]


@admin.register(CrmChange, site=workspace_admin_site)
class CrmChangeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["account", "changes", "status", "mission_id", "created_at", "applied_at"]
    list_filter = ["status"]
    list_select_related = ["account"]
    readonly_fields = ["account", "changes", "before", "reason", "status", "mission_id", "tool_call_id", "applied_at"]
    actions = ["apply"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Apply (ship) the selected staged changes")
    def apply(self, request: HttpRequest, queryset: QuerySet[CrmChange]) -> None:
        applied = 0
        with acting_as(user_actor(request.user)):
            for change in queryset.filter(status=CrmChangeStatus.STAGED):
                services.crm_change_apply(change=change)
                applied += 1
        self.message_user(request, f"Applied {applied} change(s).", messages.SUCCESS)
