"""Workspace admin (/w/<slug>/admin/): policies are edited through the services, so every
change is journaled with the super-admin who made it; requests and verdicts are read-only."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from apps.core.admin import AppendOnlyAdmin
from apps.core.admin_sites import workspace_admin_site
from apps.core.context import acting_as, user_actor
from apps.core.errors import QuarterdeckError
from apps.tenants.models import Membership

from . import registry, services
from .models import ApprovalEvent, ApprovalRequest, GateVerdict, Policy, decider_roles


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    approver_roles = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="Empty with no named users: every deciding role."
    )
    escalate_to_roles = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    approver_user_ids = forms.TypedMultipleChoiceField(
        required=False, coerce=int, label="Named approvers", widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Policy
        fields = list(services.POLICY_FIELDS)

    def __init__(self, *args: Any, workspace: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        roles = [(role, role) for role in sorted(decider_roles())]
        cast(forms.ChoiceField, self.fields["approver_roles"]).choices = roles
        cast(forms.ChoiceField, self.fields["escalate_to_roles"]).choices = roles
        members: list[tuple[int, str]] = []
        if workspace is not None:
            members = [
                (m.user_id, f"{m.user.get_username()} ({m.role})")
                for m in Membership.objects.filter(workspace=workspace, role__in=decider_roles()).select_related("user")
            ]
        cast(forms.ChoiceField, self.fields["approver_user_ids"]).choices = members
        for name, provider in (("crew_ids", registry.crew_choices), ("agent_ids", registry.agent_choices)):
            choices = provider()
            if choices:
                self.fields[name] = forms.MultipleChoiceField(
                    required=False,
                    choices=choices,
                    widget=forms.CheckboxSelectMultiple,
                    help_text="None ticked: every one.",
                )


@admin.register(Policy, site=workspace_admin_site)
class PolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = PolicyForm
    list_display = [
        "name",
        "priority",
        "enabled",
        "tool_pattern",
        "action",
        "required_approvals",
        "timeout_seconds",
        "version",
        "updated_by",
        "updated_at",
    ]
    list_display_links = ["name"]
    list_filter = ["enabled", "action", "timeout_action", "segregation_of_duties"]
    search_fields = ["name", "tool_pattern", "description"]
    ordering = ["priority", "created_at"]
    readonly_fields = ["version", "updated_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "priority"]}),
        (
            "What it matches",
            {
                "fields": [
                    "tool_pattern",
                    "conditions",
                    "min_estimated_cost_microusd",
                    "side_effects_only",
                    "crew_ids",
                    "agent_ids",
                ]
            },
        ),
        ("What it does", {"fields": ["action"]}),
        (
            "Who approves",
            {"fields": ["approver_roles", "approver_user_ids", "required_approvals", "segregation_of_duties"]},
        ),
        (
            "Timeout",
            {
                "fields": [
                    "timeout_seconds",
                    "timeout_action",
                    "escalate_to_roles",
                    "escalation_timeout_seconds",
                    "escalation_timeout_action",
                ]
            },
        ),
        ("Record", {"fields": ["version", "updated_by", "created_at", "updated_at"]}),
    ]
    actions = ["enable", "disable"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> type[ModelForm]:  # type: ignore[type-arg]
        form = super().get_form(request, obj, change=change, **kwargs)
        workspace = getattr(request, "workspace", None)

        class BoundPolicyForm(form):  # type: ignore[valid-type,misc]
            def __init__(self, *args: Any, **kw: Any):
                super().__init__(*args, workspace=workspace, **kw)

        return BoundPolicyForm

    def save_model(self, request: HttpRequest, obj: Policy, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in services.POLICY_FIELDS if name in form.cleaned_data}
        # The super-admin may not be a member, so the request's actor may be "system": name them.
        with acting_as(user_actor(request.user)):
            if change:
                saved = services.policy_update(policy=obj, fields=fields)
            else:
                saved = services.policy_create(fields=fields)
        obj.pk = saved.pk
        obj.version = saved.version

    def delete_model(self, request: HttpRequest, obj: Policy) -> None:
        with acting_as(user_actor(request.user)):
            services.policy_delete(policy=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        with acting_as(user_actor(request.user)):
            for policy in queryset:
                services.policy_delete(policy=policy)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Policy], enabled: bool) -> None:
        with acting_as(user_actor(request.user)):
            for policy in queryset:
                try:
                    services.policy_update(policy=policy, fields={"enabled": enabled})
                except QuarterdeckError as exc:
                    messages.error(request, f"{policy.name}: {exc.message}")

    @admin.action(description="Enable selected policies")
    def enable(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected policies")
    def disable(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        self._set_enabled(request, queryset, False)


class ApprovalEventInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ApprovalEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "actor_label", "comment", "edited", "arguments")
    readonly_fields = ("created_at", "kind", "actor_label", "comment", "edited", "arguments")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApprovalRequest, site=workspace_admin_site)
class ApprovalRequestAdmin(AppendOnlyAdmin):
    list_display = [
        "tool_name",
        "status",
        "resolution",
        "mode",
        "agent_name",
        "crew_name",
        "created_at",
        "deadline",
        "decided_by_label",
    ]
    list_filter = ["status", "resolution", "mode", "tool_name", "escalation_level"]
    search_fields = ["tool_name", "tool_call_id", "crew_name", "agent_name", "mission_goal", "=mission_id"]
    list_select_related = ["policy"]
    date_hierarchy = "created_at"
    inlines = [ApprovalEventInline]
    readonly_fields = [f.name for f in ApprovalRequest._meta.fields]


@admin.register(GateVerdict, site=workspace_admin_site)
class GateVerdictAdmin(AppendOnlyAdmin):
    list_display = ["tool_name", "action", "source", "policy_name", "mission_id", "created_at"]
    list_filter = ["action", "source", "tool_name"]
    search_fields = ["tool_name", "tool_call_id", "=mission_id", "policy_name"]
    readonly_fields = [f.name for f in GateVerdict._meta.fields]
