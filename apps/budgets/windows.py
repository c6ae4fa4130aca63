"""Budget windows: calendar-aligned in UTC, or one mission's lifetime.

A window is named by a key ("day:2026-11-21", "mission:<uuid>") that the running totals and
the ledger both carry, so a settlement lands in the window its reservation was taken in even
when the call crosses midnight.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NO_MISSION = "none"


@dataclass(frozen=True)
class WindowSpan:
    key: str
    start: datetime | None
    end: datetime | None


def _month_after(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def window_for(window: str, at: datetime, mission_id: uuid.UUID | None = None) -> WindowSpan:
    at = at.astimezone(UTC)
    if window == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
        return WindowSpan(f"hour:{start:%Y-%m-%dT%H}", start, start + timedelta(hours=1))
    if window == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return WindowSpan(f"day:{start:%Y-%m-%d}", start, start + timedelta(days=1))
    if window == "week":
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        return WindowSpan(f"week:{start:%Y-%m-%d}", start, start + timedelta(days=7))
    if window == "month":
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return WindowSpan(f"month:{start:%Y-%m}", start, _month_after(start))
    if window == "mission":
        # A call outside any mission shares one "no mission" window, so it is still counted.
        return WindowSpan(f"mission:{mission_id or NO_MISSION}", None, None)
    raise ValueError(f"unknown budget window {window!r}")


def window_from_key(key: str) -> WindowSpan:
    """The span of a key (for totals rebuilt from the ledger)."""
    kind, _, value = key.partition(":")
    if kind == "hour":
        start = datetime.strptime(value, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    elif kind in ("day", "week"):
        start = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    elif kind == "month":
        start = datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    elif kind == "mission":
        return WindowSpan(key, None, None)
    else:
        raise ValueError(f"unknown window key {key!r}")
    return window_for(kind, start)
