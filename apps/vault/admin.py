"""The vault in the workspace admin (/w/<slug>/admin/). Values are write-only here too: the
forms have a password field that is never rendered back, and every save goes through the
services, so it is journaled like any other change."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from apps.core.admin import AppendOnlyAdmin, EstimatedCountPaginator
from apps.core.admin_sites import workspace_admin_site
from apps.core.errors import QuarterdeckError

from . import services
from .models import AccessRecord, Grant, OAuthConnection, Secret
from .oauth import get_access_token

_WRITE_ONLY = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
_sensitive_form = method_decorator(sensitive_post_parameters("new_value", "new_client_secret", "new_refresh_token"))


class SecretForm(forms.ModelForm):  # type: ignore[type-arg]
    new_value = forms.CharField(
        label="Value",
        widget=_WRITE_ONLY,
        required=False,
        strip=False,
        help_text="Write-only. Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["name", "kind", "tier", "description"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance._state.adding and not data.get("new_value"):
            self.add_error("new_value", "A new secret needs a value.")
        return data


class GrantInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Grant
    extra = 0
    can_delete = False
    fields = ("subject_type", "subject_id", "mission_id", "expires_at", "revoked_at", "created_at")
    readonly_fields = ("subject_type", "subject_id", "mission_id", "expires_at", "revoked_at", "created_at")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _report(request: HttpRequest, admin_obj: admin.ModelAdmin, exc: QuarterdeckError) -> None:  # type: ignore[type-arg]
    admin_obj.message_user(request, f"{exc.message} {exc.details or ''}".strip(), messages.ERROR)


@admin.register(Secret, site=workspace_admin_site)
class SecretAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = SecretForm
    list_display = ["name", "kind", "tier", "key_version", "live_grants", "value_changed_at", "updated_at"]
    list_filter = ["tier", "kind"]
    search_fields = ["name", "description"]
    readonly_fields = ["key_version", "value_changed_at", "created_at", "updated_at", "created_by"]
    inlines = [GrantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Secret]:
        live = Q(grants__revoked_at__isnull=True) & (
            Q(grants__expires_at__isnull=True) | Q(grants__expires_at__gt=timezone.now())
        )
        return super().get_queryset(request).annotate(_live_grants=Count("grants", filter=live))

    @admin.display(description="key version")
    def key_version(self, obj: Secret) -> int | None:
        return obj.value.key_version if obj.value is not None else None

    @admin.display(description="live grants", ordering="_live_grants")
    def live_grants(self, obj: Secret) -> int:
        return getattr(obj, "_live_grants", 0)

    @_sensitive_form
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    @method_decorator(sensitive_variables())
    def save_model(self, request: HttpRequest, obj: Secret, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {key: data[key] for key in ("name", "kind", "tier", "description")}
        if change:
            services.secret_update(secret=obj, value=data.get("new_value") or None, **fields)
        else:
            created = services.secret_create(value=data["new_value"], **fields)
            obj.pk = created.pk  # the admin redirects to, and logs, the saved object

    def delete_model(self, request: HttpRequest, obj: Secret) -> None:
        services.secret_delete(secret=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Secret]) -> None:
        for secret in queryset:
            services.secret_delete(secret=secret)


class GrantForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Grant
        fields = ["secret", "subject_type", "subject_id", "mission_id", "expires_at", "note"]


@admin.register(Grant, site=workspace_admin_site)
class GrantAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = GrantForm
    list_display = ["secret", "subject_type", "subject_id", "mission_id", "expires_at", "state", "created_at"]
    list_filter = ["subject_type", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    list_select_related = ["secret"]
    search_fields = ["secret__name", "=subject_id", "=mission_id", "note"]
    autocomplete_fields = ["secret"]
    actions = ["revoke"]

    @admin.display(description="state")
    def state(self, obj: Grant) -> str:
        return obj.state

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A grant is immutable once given: revoke it and give a new one.
        if obj is None:
            return []
        return [*GrantForm.Meta.fields, "created_at", "created_by", "revoked_at", "revoked_by", "revoke_reason"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead; the record stays

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        if change:
            return
        data = form.cleaned_data
        grant = services.grant_create(
            secret=data["secret"],
            subject_type=data["subject_type"],
            subject_id=data["subject_id"],
            mission_id=data.get("mission_id"),
            expires_at=data.get("expires_at"),
            note=data.get("note") or "",
        )
        obj.pk = grant.pk

    @admin.action(description="Revoke selected grants")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        for grant in queryset:
            services.grant_revoke(grant=grant, reason="revoked in the admin")
        self.message_user(request, f"Revoked {queryset.count()} grant(s).", messages.SUCCESS)


@admin.register(AccessRecord, site=workspace_admin_site)
class AccessRecordAdmin(AppendOnlyAdmin):
    list_display = ["created_at", "secret_name", "tier", "decision", "reason_code", "tool_name", "crew_id", "agent_id"]
    list_filter = ["decision", "tier", "reason_code", "judge"]
    search_fields = ["secret_name", "tool_name", "intent", "=crew_id", "=agent_id", "=mission_id"]
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator


class OAuthConnectionForm(forms.ModelForm):  # type: ignore[type-arg]
    token_url = forms.URLField(max_length=500, assume_scheme="https")
    new_client_secret = forms.CharField(label="Client secret", widget=_WRITE_ONLY, required=False, strip=False)
    new_refresh_token = forms.CharField(
        label="Refresh token",
        widget=_WRITE_ONLY,
        required=False,
        strip=False,
        help_text="Write-only. Setting one reconnects the account and marks the connection healthy.",
    )

    class Meta:
        model = OAuthConnection
        fields = ["provider", "display_name", "client_id", "token_url", "auth_method", "scopes"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance._state.adding and not data.get("new_client_secret"):
            self.add_error("new_client_secret", "A new connection needs its client secret.")
        return data


@admin.register(OAuthConnection, site=workspace_admin_site)
class OAuthConnectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = OAuthConnectionForm
    list_display = [
        "provider",
        "display_name",
        "state",
        "expires_at",
        "last_refreshed_at",
        "refresh_count",
        "last_error_code",
    ]
    list_filter = ["state", "auth_method"]
    search_fields = ["provider", "display_name", "client_id"]
    readonly_fields = [
        "state",
        "expires_at",
        "last_refreshed_at",
        "refresh_count",
        "last_error_code",
        "last_error",
        "last_error_at",
        "broken_at",
        "created_at",
        "updated_at",
    ]
    actions = ["check_token"]

    @_sensitive_form
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    @method_decorator(sensitive_variables())
    def save_model(self, request: HttpRequest, obj: OAuthConnection, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {key: data[key] for key in OAuthConnectionForm.Meta.fields if key != "provider"}
        if change:
            services.oauth_connection_update(
                connection=obj,
                client_secret=data.get("new_client_secret") or None,
                refresh_token=data.get("new_refresh_token") or None,
                **fields,
            )
        else:
            created = services.oauth_connection_create(
                provider=data["provider"],
                client_secret=data["new_client_secret"],
                refresh_token=data.get("new_refresh_token") or None,
                **fields,
            )
            obj.pk = created.pk

    @admin.action(description="Check the token (refresh when due)")
    def check_token(self, request: HttpRequest, queryset: QuerySet[OAuthConnection]) -> None:
        for connection in queryset:
            try:
                get_access_token(connection)  # the token itself is dropped, never shown
            except QuarterdeckError as exc:
                _report(request, self, exc)
            else:
                self.message_user(request, f"{connection}: healthy, token valid.", messages.SUCCESS)
