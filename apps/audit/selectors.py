"""Reading the journal: filters, full-text search, mission forks and checkpoints."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.postgres.search import SearchQuery
from django.db.models import Q, QuerySet

from .catalog import Severity
from .models import SEARCH_CONFIG, JournalCheckpoint, JournalEntry, MissionFork, PayloadSearchVector, RetentionPolicy


@dataclass(frozen=True)
class JournalFilters:
    mission_id: uuid.UUID | None = None
    crew_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    kinds: tuple[str, ...] = ()  # exact names, or "llm.*" for a prefix
    severities: tuple[str, ...] = ()
    min_severity: str | None = None
    actor_kind: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None
    before_seq: int | None = None
    q: str | None = None

    def as_q(self) -> Q:
        condition = Q()
        for name in ("mission_id", "crew_id", "agent_id", "actor_kind", "actor_id"):
            value = getattr(self, name)
            if value:
                condition &= Q(**{name: value})
        if self.kinds:
            kinds = Q()
            for kind in self.kinds:
                kinds |= Q(kind__startswith=kind[:-1]) if kind.endswith(".*") else Q(kind=kind)
            condition &= kinds
        if self.severities:
            condition &= Q(severity__in=self.severities)
        if self.min_severity:
            rank = Severity.rank(self.min_severity)
            condition &= Q(severity__in=[s for s in Severity.values if Severity.rank(s) >= rank])
        if self.since:
            condition &= Q(created_at__gte=self.since)
        if self.until:
            condition &= Q(created_at__lt=self.until)
        if self.after_seq is not None:
            condition &= Q(seq__gt=self.after_seq)
        if self.before_seq is not None:
            condition &= Q(seq__lt=self.before_seq)
        return condition


def journal_entry_list(*, filters: JournalFilters | None = None) -> QuerySet[JournalEntry]:
    """Entries of the active workspace, newest first. Full-text search uses the same
    expression as the GIN index (``PayloadSearchVector``), so the index answers it."""
    filters = filters or JournalFilters()
    entries = JournalEntry.objects.filter(filters.as_q())
    if filters.q:
        entries = entries.alias(document=PayloadSearchVector()).filter(
            document=SearchQuery(filters.q, config=SEARCH_CONFIG, search_type="websearch")
        )
    return entries.order_by("-seq")


def journal_entry_get(*, seq: int) -> JournalEntry | None:
    return JournalEntry.objects.filter(seq=seq).first()


def checkpoint_list() -> QuerySet[JournalCheckpoint]:
    return JournalCheckpoint.objects.order_by("-seq", "-id")


def retention_policy_list() -> list[RetentionPolicy]:
    return sorted(RetentionPolicy.objects.all(), key=lambda policy: Severity.rank(policy.severity))


def fork_list(*, mission_id: uuid.UUID | None = None) -> QuerySet[MissionFork]:
    forks = MissionFork.objects.all()
    if mission_id is not None:
        forks = forks.filter(Q(source_mission_id=mission_id) | Q(new_mission_id=mission_id))
    return forks.order_by("-created_at")
