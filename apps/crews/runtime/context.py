"""What a graph run knows about its surroundings (LangGraph's run-scoped ``context``, never
checkpointed): the workspace, the mission, the worker that claimed it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.tenants.models import Workspace

from ..models import Agent, Mission


class LostClaim(Exception):
    """Another worker owns the mission now (our lease lapsed): stop without writing."""


@dataclass
class RunContext:
    workspace: Workspace
    mission_id: uuid.UUID
    worker_id: str
    claimed_at: datetime
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[str], None] = lambda line: None
    _roster: list[Agent] | None = None

    @property
    def schema(self) -> str:
        return str(self.workspace.schema_name)

    def mission(self) -> Mission:
        """The mission, fresh, after renewing our lease; LostClaim if it is not ours any more.

        The conditional update is the fence: a worker whose lease lapsed (it hung, another took
        over) finds zero rows here and stops before writing anything for the step.
        """
        lease = timezone.now() + timedelta(seconds=settings.CREWS_LEASE_SECONDS)
        updated = Mission.objects.filter(pk=self.mission_id, claimed_by=self.worker_id).update(lease_expires_at=lease)
        if not updated:
            raise LostClaim(str(self.mission_id))
        return Mission.objects.select_related("crew").get(pk=self.mission_id)

    def roster(self, mission: Mission) -> list[Agent]:
        """The crew's agents, first one first; read once per run (an edit applies from the
        mission's next run)."""
        if self._roster is None:
            self._roster = list(
                Agent.objects.filter(crew_id=mission.crew_id).select_related("crew").order_by("position", "name")
            )
        return self._roster

    def running_seconds(self, mission: Mission) -> float:
        return mission.running_seconds + (timezone.now() - self.claimed_at).total_seconds()
