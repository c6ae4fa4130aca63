"""Budgets, the append-only ledger, running totals and alert state (each workspace's schema).

- ``Budget``: a limit for one scope (the workspace, a crew, a mission or an agent, named by
  UUID) over a window (calendar hour/day/week/month in UTC, or each mission's lifetime), with
  a mode (hard, soft, tiered) and thresholds.
- ``LedgerEntry``: every reservation, settlement, release, blocked attempt and adjustment,
  with tokens, the model and the price used. Append-only: triggers (migration 0002) reject
  UPDATE, DELETE and TRUNCATE.
- ``BudgetTotal``: reserved and spent per budget window, maintained in the same transaction
  as the ledger row; ``rebuild_budget_totals`` recomputes them from the ledger.
- ``BudgetAlert``: which thresholds have notified in which window (once per window).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from apps.core.money import format_usd


class Scope(models.TextChoices):
    WORKSPACE = "workspace", "Workspace"
    CREW = "crew", "Crew"
    MISSION = "mission", "Mission"
    AGENT = "agent", "Agent"


class Window(models.TextChoices):
    HOUR = "hour", "Hour (UTC)"
    DAY = "day", "Day (UTC)"
    WEEK = "week", "Week (UTC, from Monday)"
    MONTH = "month", "Month (UTC)"
    MISSION = "mission", "Mission lifetime"


class Mode(models.TextChoices):
    HARD = "hard", "Hard: block at 100%"
    SOFT = "soft", "Soft: warn, block only at the ceiling"
    TIERED = "tiered", "Tiered: warn, then block"


class BudgetQuerySet(models.QuerySet["Budget"]):
    def active(self) -> BudgetQuerySet:
        return self.filter(is_active=True)


class Budget(models.Model):
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    scope_id = models.UUIDField(null=True, blank=True, help_text="The crew, mission or agent; empty for the workspace.")
    window = models.CharField(max_length=10, choices=Window.choices)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.HARD)
    limit_microusd = models.BigIntegerField(help_text="The limit in micro-USD (1 USD = 1,000,000).")
    warn_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Warn (notify, allow downgrades) from this share of the limit."
    )
    block_percent = models.PositiveSmallIntegerField(
        help_text="Block calls that would take spend past this share of the limit (soft: the ceiling)."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BudgetQuerySet.as_manager()

    class Meta:
        ordering = ["scope", "name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(limit_microusd__gt=0), name="budget_limit_positive"),
            models.CheckConstraint(
                condition=(Q(scope="workspace") & Q(scope_id__isnull=True))
                | (~Q(scope="workspace") & Q(scope_id__isnull=False)),
                name="budget_scope_id_matches_scope",
            ),
            models.CheckConstraint(
                condition=Q(block_percent__gte=1)
                & (Q(warn_percent__isnull=True) | Q(warn_percent__lt=models.F("block_percent"))),
                name="budget_thresholds_ordered",
            ),
        ]
        indexes = [
            models.Index(fields=["scope", "scope_id"], name="budget_scope_active", condition=Q(is_active=True)),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope} {self.window}, {format_usd(self.limit_microusd)})"

    @property
    def block_at_microusd(self) -> int:
        return self.limit_microusd * self.block_percent // 100

    @property
    def warn_at_microusd(self) -> int | None:
        return None if self.warn_percent is None else self.limit_microusd * self.warn_percent // 100


class BudgetTotal(models.Model):
    """Running totals of one budget window. Row-locked by every reservation that counts here."""

    # No index of its own: the unique (budget, window_key) index serves lookups by budget.
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="totals", db_index=False)
    window_key = models.CharField(max_length=64)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    reserved_microusd = models.BigIntegerField(default=0)
    spent_microusd = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["budget", "-window_start"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "window_key"], name="budgettotal_unique_window"),
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.window_key}"


class EntryKind(models.TextChoices):
    RESERVATION = "reservation", "Reservation"
    SETTLEMENT = "settlement", "Settlement"
    RELEASE = "release", "Release"
    BLOCKED = "blocked", "Blocked"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """One money movement. ``amount_microusd`` changes spend, ``reserved_microusd`` changes
    what is held; ``budget_ids``/``window_keys`` (parallel arrays) say which budget windows it
    counted against, so totals can be rebuilt from the ledger alone."""

    created_at = models.DateTimeField(db_default=Now())
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    reservation_id = models.UUIDField(null=True, blank=True, help_text="Groups the entries of one call.")
    request_id = models.CharField(max_length=64, blank=True, default="")
    crew_id = models.UUIDField(null=True, blank=True)
    mission_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    model = models.CharField(max_length=100, blank=True, default="")
    price_id = models.BigIntegerField(null=True, blank=True)
    price_version = models.PositiveIntegerField(null=True, blank=True)
    price_input_per_mtok = models.BigIntegerField(null=True, blank=True)
    price_output_per_mtok = models.BigIntegerField(null=True, blank=True)
    price_cache_read_per_mtok = models.BigIntegerField(null=True, blank=True)
    price_cache_write_per_mtok = models.BigIntegerField(null=True, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    amount_microusd = models.BigIntegerField(default=0, help_text="Change of spend.")
    reserved_microusd = models.BigIntegerField(default=0, help_text="Change of the amount held.")
    requested_microusd = models.BigIntegerField(default=0, help_text="Worst case asked for (reservation, blocked).")
    budget_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    window_keys = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    blocked_budget_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200, blank=True, default="")
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        constraints = [
            # A call holds one reservation and closes it once: a second settlement or release
            # of the same reservation is rejected by the database, not only by the code.
            models.UniqueConstraint(
                fields=["reservation_id"], condition=Q(kind="reservation"), name="ledger_one_reservation"
            ),
            models.UniqueConstraint(
                fields=["reservation_id"], condition=Q(kind__in=["settlement", "release"]), name="ledger_closed_once"
            ),
        ]
        # Every call appends four rows: few indexes, and BRIN for time (rows arrive in order).
        # Reservation lookups use the two unique partial indexes above.
        indexes = [
            BrinIndex(fields=["created_at"], name="ledger_created_brin"),
            models.Index(fields=["request_id"], name="ledger_request", condition=~Q(request_id="")),
            models.Index(fields=["mission_id", "id"], name="ledger_mission", condition=Q(mission_id__isnull=False)),
            models.Index(fields=["crew_id", "id"], name="ledger_crew", condition=Q(crew_id__isnull=False)),
            models.Index(fields=["agent_id", "id"], name="ledger_agent", condition=Q(agent_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {format_usd(self.amount_microusd, 6)}"


class AlertLevel(models.TextChoices):
    WARNING = "warning", "Warning threshold passed"
    EXCEEDED = "exceeded", "Limit reached or a call blocked"


class BudgetAlert(models.Model):
    """A threshold that has notified in a window; the unique row makes it once per window."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    window_key = models.CharField(max_length=64)
    level = models.CharField(max_length=10, choices=AlertLevel.choices)
    spent_microusd = models.BigIntegerField()
    reserved_microusd = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "window_key", "level"], name="budgetalert_once_per_window"),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.budget_id} {self.window_key}"
