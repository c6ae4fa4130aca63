"""Periodic journal work for the worker loop: signed checkpoints and retention.

The worker (``run_crews``) creates one ``JournalHousekeeping`` and calls ``tick()`` on each
pass of its loop; work happens at most every ``checkpoint_every`` / ``compact_every`` seconds.
Several workers may tick: a checkpoint of an unchanged journal is skipped, and compaction
locks the journal head, so running twice is harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .services import journal_checkpoint_all, journal_compact

logger = logging.getLogger(__name__)


@dataclass
class JournalHousekeeping:
    checkpoint_every: float = field(default_factory=lambda: float(getattr(settings, "JOURNAL_CHECKPOINT_EVERY_S", 300)))
    compact_every: float = field(default_factory=lambda: float(getattr(settings, "JOURNAL_COMPACT_EVERY_S", 86_400)))
    _last_checkpoint: float = 0.0
    _last_compaction: float = 0.0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._last_checkpoint >= self.checkpoint_every:
            self._last_checkpoint = now
            done = journal_checkpoint_all()
            logger.info("journal checkpoints: %s", {slug: seq for slug, seq in done.items() if seq})
        if now - self._last_compaction >= self.compact_every:
            self._last_compaction = now
            compact_all()


def compact_all() -> dict[str, int]:
    """Apply every active workspace's retention policy (crosses workspaces: housekeeping)."""
    removed: dict[str, int] = {}
    for workspace in Workspace.objects.filter(is_active=True).order_by("slug"):
        with workspace_schema(workspace):
            removed[workspace.slug] = sum(c.removed for c in journal_compact())
    return removed
