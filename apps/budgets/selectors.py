"""Reading budgets, their current spend, the ledger, and spend reports."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.core.money import to_usd

from .models import Budget, BudgetTotal, EntryKind, LedgerEntry, Scope, Window
from .windows import window_for


def budget_list(
    *, scope: str | None = None, scope_id: uuid.UUID | None = None, include_archived: bool = False
) -> QuerySet[Budget]:
    queryset = Budget.objects.all()
    if not include_archived:
        queryset = queryset.filter(is_active=True)
    if scope:
        queryset = queryset.filter(scope=scope)
    if scope_id:
        queryset = queryset.filter(scope_id=scope_id)
    return queryset.order_by("scope", "name", "id")


def budget_get(*, pk: int) -> Budget:
    return Budget.objects.get(pk=pk)


@dataclass(frozen=True)
class CurrentSpend:
    window_key: str
    window_start: datetime | None
    window_end: datetime | None
    spent_microusd: int
    reserved_microusd: int
    limit_microusd: int

    @property
    def percent(self) -> int:
        return (self.spent_microusd + self.reserved_microusd) * 100 // self.limit_microusd

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_key": self.window_key,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "spent_microusd": self.spent_microusd,
            "reserved_microusd": self.reserved_microusd,
            "percent": self.percent,
        }


def current_window_key(budget: Budget, at: datetime | None = None) -> str | None:
    """The window a new call would count against now. None for per-mission windows of a
    crew, agent or the workspace (there is one per mission)."""
    if budget.window == Window.MISSION:
        return f"mission:{budget.scope_id}" if budget.scope == Scope.MISSION else None
    return window_for(budget.window, at or timezone.now()).key


def budget_current_spend(*, budgets: Iterable[Budget], at: datetime | None = None) -> dict[int, CurrentSpend]:
    """Spend and holds in each budget's current window, in one query."""
    at = at or timezone.now()
    keys: dict[int, str] = {}
    by_id: dict[int, Budget] = {}
    for budget in budgets:
        key = current_window_key(budget, at)
        by_id[budget.pk] = budget
        if key is not None:
            keys[budget.pk] = key
    if not keys:
        return {}
    condition = Q()
    for budget_id, key in keys.items():
        condition |= Q(budget_id=budget_id, window_key=key)
    found = {t.budget_id: t for t in BudgetTotal.objects.filter(condition)}
    result: dict[int, CurrentSpend] = {}
    for budget_id, key in keys.items():
        total = found.get(budget_id)
        budget = by_id[budget_id]
        span = window_for(budget.window, at, budget.scope_id) if budget.window != Window.MISSION else None
        result[budget_id] = CurrentSpend(
            window_key=key,
            window_start=span.start if span else None,
            window_end=span.end if span else None,
            spent_microusd=total.spent_microusd if total else 0,
            reserved_microusd=total.reserved_microusd if total else 0,
            limit_microusd=budget.limit_microusd,
        )
    return result


# --- ledger -----------------------------------------------------------------------------------


LEDGER_FILTERS = ("kind", "model", "crew_id", "mission_id", "agent_id", "request_id")


def ledger_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[LedgerEntry]:
    """Ledger entries, newest first. Filters: kind, model, crew_id, mission_id, agent_id,
    request_id (one call), budget_id, since, until (datetimes)."""
    queryset = LedgerEntry.objects.all()
    for key, value in (filters or {}).items():
        if value in (None, ""):
            continue
        if key in LEDGER_FILTERS:
            queryset = queryset.filter(**{key: value})
        elif key == "budget_id":
            queryset = queryset.filter(budget_ids__contains=[int(value)])
        elif key == "since":
            queryset = queryset.filter(created_at__gte=value)
        elif key == "until":
            queryset = queryset.filter(created_at__lt=value)
        else:
            raise ValidationFailed(f"Unknown ledger filter {key!r}.", details={key: ["Unknown filter."]})
    return queryset.order_by("-id")


CSV_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "reservation_id",
    "request_id",
    "crew_id",
    "mission_id",
    "agent_id",
    "model",
    "price_id",
    "price_version",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "price_cache_read_per_mtok",
    "price_cache_write_per_mtok",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "amount_microusd",
    "amount_usd",
    "reserved_microusd",
    "requested_microusd",
    "budget_ids",
    "window_keys",
    "blocked_budget_id",
    "actor",
    "note",
)


def _csv_safe(value: Any) -> Any:
    # A cell starting with = + - @ is a formula in spreadsheets; prefix text cells (not numbers).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def ledger_csv_rows(queryset: QuerySet[LedgerEntry], chunk_size: int = 2000) -> Iterator[list[Any]]:
    yield list(CSV_COLUMNS)
    for entry in queryset.iterator(chunk_size=chunk_size):
        row: list[Any] = []
        for column in CSV_COLUMNS:
            if column == "amount_usd":
                row.append(str(to_usd(entry.amount_microusd)))
            elif column in ("budget_ids", "window_keys"):
                row.append(" ".join(str(v) for v in getattr(entry, column)))
            elif column == "created_at":
                row.append(entry.created_at.isoformat())
            else:
                value = getattr(entry, column)
                row.append("" if value is None else _csv_safe(value))
        yield row


# --- spend reports -----------------------------------------------------------------------------

SPEND_DIMENSIONS = ("crew", "mission", "agent", "model", "day")
_SPEND_KINDS = (EntryKind.SETTLEMENT, EntryKind.ADJUSTMENT)


def spend_report(
    *,
    group_by: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Actual spend (settlements and adjustments) grouped by any of crew, mission, agent,
    model and day (UTC), for [since, until); defaults to the last 30 days."""
    unknown = [d for d in group_by if d not in SPEND_DIMENSIONS]
    if unknown or not group_by:
        raise ValidationFailed(
            "Group by one or more of: " + ", ".join(SPEND_DIMENSIONS) + ".",
            details={"group_by": unknown or ["Required."]},
        )
    until = until or timezone.now()
    since = since or until - timedelta(days=30)
    if since >= until:
        raise ValidationFailed("since must be before until.", details={"since": ["Must be before until."]})
    queryset = ledger_list(filters={**(filters or {}), "since": since, "until": until}).filter(kind__in=_SPEND_KINDS)
    fields: list[str] = []
    for dimension in group_by:
        if dimension == "day":
            queryset = queryset.annotate(day=TruncDay("created_at"))
            fields.append("day")
        elif dimension == "model":
            fields.append("model")
        else:
            fields.append(f"{dimension}_id")
    rows = (
        queryset.order_by()
        .values(*fields)
        .annotate(
            spent=Sum("amount_microusd"),
            calls=Count("id", filter=Q(kind=EntryKind.SETTLEMENT)),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cache_read_tokens=Sum("cache_read_tokens"),
            cache_write_tokens=Sum("cache_write_tokens"),
        )
        .order_by(*fields)
    )
    result_rows = []
    total = 0
    for row in rows:
        out: dict[str, Any] = {}
        for field, dimension in zip(fields, group_by, strict=True):
            value = row[field]
            if dimension == "day":
                value = value.date().isoformat() if value else None
            elif value is not None and not isinstance(value, str):
                value = str(value)
            out[dimension] = value
        spent = int(row["spent"] or 0)
        total += spent
        out.update(
            spent_microusd=spent,
            spent_usd=str(to_usd(spent)),
            calls=int(row["calls"] or 0),
            input_tokens=int(row["input_tokens"] or 0),
            output_tokens=int(row["output_tokens"] or 0),
            cache_read_tokens=int(row["cache_read_tokens"] or 0),
            cache_write_tokens=int(row["cache_write_tokens"] or 0),
        )
        result_rows.append(out)
    return {
        "group_by": list(group_by),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total_microusd": total,
        "total_usd": str(to_usd(total)),
        "rows": result_rows,
    }
