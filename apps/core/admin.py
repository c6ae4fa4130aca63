"""Admin building blocks shared by every app."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest
from django.utils.functional import cached_property


class EstimatedCountPaginator(Paginator):
    """On huge append-only tables COUNT(*) is the slowest part of an admin page; use the
    planner's estimate when there is no filter, the exact count otherwise."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                    [query.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > 10_000:
                return int(row[0])
        return super().count


class AppendOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only admin for append-only data (journal, ledger): view, filter, never edit."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
