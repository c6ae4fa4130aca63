from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from . import services
from .models import ApiKey, Membership, Workspace
from .urlconf import workspace_reverse


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "slug", "schema_name", "is_active", "member_count", "created_at", "open_links"]
    list_filter = ["is_active", "created_at"]
    search_fields = ["name", "slug", "schema_name"]
    readonly_fields = ["schema_name", "graph_name", "created_at", "created_by"]
    fields = [
        "name",
        "slug",
        "schema_name",
        "graph_name",
        "is_active",
        "email_domains",
        "webhook_url",
        "created_at",
        "created_by",
    ]
    inlines = [MembershipInline]
    actions = ["deactivate", "activate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return super().get_queryset(request).annotate(_members=Count("memberships")).select_related("created_by")

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: Workspace) -> int:
        return getattr(obj, "_members", 0)

    @admin.display(description="open")
    def open_links(self, obj: Workspace) -> str:
        return format_html(
            '<a href="{}">portal</a> · <a href="{}">workspace admin</a>',
            workspace_reverse(obj.slug, "portal:home"),
            workspace_reverse(obj.slug, "wsadmin:index"),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("slug")  # the slug names the schema; it never changes
        return fields

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return list(self.inlines) if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Workspace, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        provisioned = services.workspace_provision(
            name=obj.name, slug=obj.slug, created_by=request.user, email_domains=obj.email_domains
        )
        obj.pk = provisioned.workspace.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"Provisioned {obj.slug} (schema, graph, defaults) in {provisioned.seconds:.2f}s.",
            messages.SUCCESS,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting drops a schema with its journal; deactivate instead.
        return False

    @admin.action(description="Deactivate selected workspaces")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        for workspace in queryset:
            services.workspace_update(workspace=workspace, is_active=False)

    @admin.action(description="Activate selected workspaces")
    def activate(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        for workspace in queryset:
            services.workspace_update(workspace=workspace, is_active=True)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "workspace", "prefix", "role", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["role", "workspace", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "workspace__slug"]
    list_select_related = ["workspace", "created_by"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are created through the API or portal, where the token can be shown once.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


User = get_user_model()


class QuarterdeckUserAdmin(UserAdmin):  # type: ignore[type-arg]
    inlines = [MembershipInline]
    list_display = ["username", "email", "is_staff", "is_superuser", "is_active", "last_login"]


admin.site.unregister(User)
admin.site.register(User, QuarterdeckUserAdmin)
