"""Workspace admin for budgets: spend against limit per budget, the ledger read-only with
filters and CSV export, running totals and alerts read-only. Writes go through services."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.admin import AppendOnlyAdmin
from apps.core.admin_sites import workspace_admin_site
from apps.core.errors import QuarterdeckError
from apps.core.money import format_usd
from apps.tenants.access import workspace_schema

from . import selectors, services
from .models import Budget, BudgetAlert, BudgetTotal, LedgerEntry


class BudgetAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Budget
        fields = ["name", "scope", "scope_id", "window", "mode", "limit_microusd", "warn_percent", "block_percent",
                  "is_active"]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        fields = ("name", "scope", "scope_id", "window", "mode", "limit_microusd", "warn_percent", "block_percent")
        data = {name: getattr(self.instance, name) for name in fields}
        data.update({name: value for name, value in cleaned.items() if name in fields})
        try:
            services.budget_validate(budget=Budget(**data))
        except QuarterdeckError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            messages_ = [f"{k}: {' '.join(map(str, v))}" for k, v in details.items()]
            raise forms.ValidationError(messages_ or exc.message) from exc
        return cleaned


@admin.register(Budget, site=workspace_admin_site)
class BudgetAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = BudgetAdminForm
    list_display = ["name", "scope", "scope_id", "window", "mode", "limit", "spend_vs_limit", "is_active"]
    list_filter = ["scope", "window", "mode", "is_active"]
    search_fields = ["name", "scope_id"]
    fields = [
        "name",
        "scope",
        "scope_id",
        "window",
        "mode",
        "limit_microusd",
        "warn_percent",
        "block_percent",
        "is_active",
    ]
    actions = ["archive"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # What a budget measures never changes; make a new budget for a new scope.
        return ["scope", "scope_id"] if obj is not None else []

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # One query for the current window of every budget on the page.
        self._current = selectors.budget_current_spend(budgets=changelist.result_list)
        return changelist

    @admin.display(description="limit", ordering="limit_microusd")
    def limit(self, obj: Budget) -> str:
        return format_usd(obj.limit_microusd)

    @admin.display(description="spend vs limit (current window)")
    def spend_vs_limit(self, obj: Budget) -> str:
        current = getattr(self, "_current", {}).get(obj.pk)
        if current is None:
            return "per mission"
        percent = current.percent
        colour = (
            "#b00"
            if percent >= obj.block_percent
            else "#c80"
            if obj.warn_percent and percent >= obj.warn_percent
            else "#080"
        )
        return format_html(
            '<span style="display:inline-block;width:120px;background:#eee;vertical-align:middle">'
            '<span style="display:block;width:{}px;height:10px;background:{}"></span></span> '
            "{} spent + {} held of {} ({}%)",
            min(120, percent * 120 // 100),
            colour,
            format_usd(current.spent_microusd),
            format_usd(current.reserved_microusd),
            format_usd(obj.limit_microusd),
            percent,
        )

    def save_model(self, request: HttpRequest, obj: Budget, form: Any, change: bool) -> None:
        if change:
            changed = {name: form.cleaned_data[name] for name in form.changed_data if name in services.EDITABLE_FIELDS}
            services.budget_update(budget=Budget.objects.get(pk=obj.pk), **changed)
        else:
            created = services.budget_create(
                name=obj.name,
                scope=obj.scope,
                scope_id=obj.scope_id,
                window=obj.window,
                mode=obj.mode,
                limit_microusd=obj.limit_microusd,
                warn_percent=obj.warn_percent,
                block_percent=obj.block_percent,
            )
            obj.pk = created.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # archive instead: the ledger points at budgets

    @admin.action(description="Archive selected budgets")
    def archive(self, request: HttpRequest, queryset: QuerySet[Budget]) -> None:
        for budget in queryset:
            services.budget_archive(budget=budget)
        self.message_user(request, f"Archived {queryset.count()} budget(s).", messages.SUCCESS)


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin.register(LedgerEntry, site=workspace_admin_site)
class LedgerEntryAdmin(AppendOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "kind",
        "model",
        "amount",
        "held",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "mission_id",
        "request_id",
    ]
    list_filter = ["kind", "model", "created_at"]
    search_fields = ["=request_id", "=mission_id", "=crew_id", "=agent_id"]
    date_hierarchy = "created_at"
    actions = ["export_csv"]

    @admin.display(description="amount", ordering="amount_microusd")
    def amount(self, obj: LedgerEntry) -> str:
        return format_usd(obj.amount_microusd, 6)

    @admin.display(description="held")
    def held(self, obj: LedgerEntry) -> str:
        return format_usd(obj.reserved_microusd, 6)

    @admin.action(description="Export selected entries as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[LedgerEntry]) -> StreamingHttpResponse:
        workspace = getattr(request, "workspace", None)
        ordered = queryset.order_by("id")

        def rows() -> Iterator[str]:
            # Streamed after the view returns: activate the schema for it again.
            writer = csv.writer(_Echo())
            with workspace_schema(workspace) if workspace is not None else contextlib.nullcontext():
                for row in selectors.ledger_csv_rows(ordered):
                    yield writer.writerow(row)

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="ledger-{timezone.now():%Y%m%dT%H%M%SZ}.csv"'
        return response


@admin.register(BudgetTotal, site=workspace_admin_site)
class BudgetTotalAdmin(AppendOnlyAdmin):
    """Running totals are a cache of the ledger (``rebuild_budget_totals``); never edited here."""

    list_display = ["budget", "window_key", "spent", "held", "updated_at"]
    list_filter = ["budget__scope", "budget__window"]
    list_select_related = ["budget"]
    search_fields = ["budget__name", "window_key"]

    @admin.display(description="spent", ordering="spent_microusd")
    def spent(self, obj: BudgetTotal) -> str:
        return format_usd(obj.spent_microusd, 4)

    @admin.display(description="held", ordering="reserved_microusd")
    def held(self, obj: BudgetTotal) -> str:
        return format_usd(obj.reserved_microusd, 4)


@admin.register(BudgetAlert, site=workspace_admin_site)
class BudgetAlertAdmin(AppendOnlyAdmin):
    list_display = ["created_at", "budget", "window_key", "level", "spent_microusd"]
    list_filter = ["level"]
    list_select_related = ["budget"]
