"""Run one claimed mission until it ends, waits, pauses or is released; record how it stopped.

The graph decides what happens next from its checkpoint: a brand-new mission starts from
its initial state; one interrupted for an approval resumes with ``Command(resume=decision)``;
one cut off mid-step (its worker died) re-runs that step; one halted (paused, released)
re-enters through the graph's entry. Checkpoints are written synchronously
(``durability="sync"``): a step's checkpoint is in Postgres before the next step starts.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from apps.audit.services import journal_append
from apps.core.context import SYSTEM, acting_as
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from ..models import Mission, MissionControl, MissionStatus
from ..services import wake_workers, withdraw_approvals_on_commit
from . import checkpoints, governance
from .context import LostClaim, RunContext
from .graph import (
    HALT_BUDGET,
    HALT_CANCELLED,
    HALT_MAX_STEPS,
    HALT_MAX_WALL,
    HALT_PAUSED,
    HALT_YIELD,
    compile_graph,
    initial_state,
)
from .model import text_of

logger = logging.getLogger(__name__)

FAIL_REASONS = {
    HALT_MAX_STEPS: "The mission reached its step limit.",
    HALT_MAX_WALL: "The mission reached its running-time limit.",
    HALT_BUDGET: "A budget blocked the next model call.",
}


def run_mission(
    *,
    workspace: Workspace,
    mission_id: uuid.UUID,
    worker_id: str,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> str:
    """Run a mission this worker has claimed. Returns how it stopped (a status, or "lost")."""
    with workspace_schema(workspace), acting_as(SYSTEM):
        mission = Mission.objects.select_related("crew").get(pk=mission_id)
        if mission.claimed_by != worker_id:
            return "lost"
        ctx = RunContext(
            workspace=workspace,
            mission_id=mission.pk,
            worker_id=worker_id,
            claimed_at=mission.claimed_at or timezone.now(),
            stop=stop or threading.Event(),
            progress=progress,
        )
        with checkpoints.saver(workspace.schema_name) as checkpointer:
            graph: Any = compile_graph(checkpointer)
            config = checkpoints.thread_config(mission.thread_id)
            snapshot = graph.get_state(config)
            graph_input: Any
            if snapshot.interrupts:
                if mission.resume_payload is None:
                    return _conclude(ctx, graph, config)  # still waiting: nothing to resume with
                graph_input = Command(resume=mission.resume_payload)
            elif snapshot.next:
                graph_input = None  # a step was cut off: run it again
            elif snapshot.values:
                graph_input = {"halt": None, "detail": ""}  # halted earlier: re-enter
            else:
                first = mission.crew.agents.order_by("position", "name").first()
                if first is None:
                    return _fail(ctx, "no_agents", "The crew has no agents.")
                graph_input = initial_state(mission, first)
            _started(ctx, mission, resumed=bool(snapshot.values), from_step=int((snapshot.values or {}).get("step", 0)))
            try:
                for _update in graph.stream(graph_input, config, context=ctx, stream_mode="updates", durability="sync"):
                    pass
            except LostClaim:
                progress("claim lost to another worker; stopped")
                return "lost"
            except Exception as exc:
                logger.exception("mission %s failed", mission_id)
                return _fail(ctx, "error", f"{type(exc).__name__}: {exc}")
            return _conclude(ctx, graph, config)


def _locked(ctx: RunContext) -> Mission | None:
    # NO KEY UPDATE of the mission row only: rows that reference it (messages, tool calls) and
    # its crew stay free for other transactions' foreign-key checks.
    mission = Mission.objects.select_for_update(no_key=True, of=("self",)).select_related("crew").get(pk=ctx.mission_id)
    return mission if mission.claimed_by == ctx.worker_id else None


def _release_fields(mission: Mission, ctx: RunContext) -> None:
    mission.running_seconds = ctx.running_seconds(mission)
    mission.claimed_by = ""
    mission.lease_expires_at = None


@transaction.atomic
def _started(ctx: RunContext, mission: Mission, *, resumed: bool, from_step: int) -> None:
    locked = _locked(ctx)
    if locked is None:
        raise LostClaim(str(ctx.mission_id))
    payload: dict[str, Any] = {"worker": ctx.worker_id, "attempt": locked.attempts}
    if resumed:
        payload.update(resumed=True, from_step=from_step)
    if locked.resume_payload is not None:
        journal_append(
            kind="mission.resumed",
            payload={"reason": "approval decided", "decision": locked.resume_payload},
            crew_id=locked.crew_id,
            mission_id=locked.pk,
        )
    locked.status = MissionStatus.RUNNING
    locked.waiting_on = ""
    locked.started_at = locked.started_at or timezone.now()
    locked.save(update_fields=["status", "waiting_on", "started_at", "updated_at"])
    journal_append(kind="mission.started", payload=payload, crew_id=locked.crew_id, mission_id=locked.pk)
    ctx.progress(f"started (attempt {locked.attempts}{f', resuming after step {from_step}' if resumed else ''})")


def _fail(ctx: RunContext, reason: str, message: str) -> str:
    with transaction.atomic():
        mission = _locked(ctx)
        if mission is None:
            return "lost"
        _release_fields(mission, ctx)
        mission.status = MissionStatus.FAILED
        mission.halt_reason = reason
        mission.error = {"reason": reason, "message": message[:2000]}
        mission.finished_at = timezone.now()
        mission.control = MissionControl.NONE
        mission.save()
        journal_append(
            kind="mission.failed",
            payload={
                "status": "failed",
                "output": None,
                "reason": reason,
                "error": message[:2000],
                "step": mission.steps,
                "cost_microusd": mission.cost_micros,
            },
            crew_id=mission.crew_id,
            mission_id=mission.pk,
        )
        withdraw_approvals_on_commit(mission.pk)
    ctx.progress(f"failed: {message}")
    return MissionStatus.FAILED


def _conclude(ctx: RunContext, graph: Any, config: RunnableConfig) -> str:
    snapshot = graph.get_state(config)
    values = snapshot.values or {}
    halt = values.get("halt")
    with transaction.atomic():
        mission = _locked(ctx)
        if mission is None:
            return "lost"
        _release_fields(mission, ctx)
        mission.resume_payload = None
        if snapshot.interrupts:
            request = dict(snapshot.interrupts[0].value or {})
            mission.status = MissionStatus.WAITING_APPROVAL
            mission.waiting_on = str(request.get("approval_request_id", ""))
            # The decision may have come before we got here (and its NOTIFY found us running).
            decision = governance.approval_decision(mission.waiting_on)
            if decision is not None:
                mission.status = MissionStatus.QUEUED
                mission.resume_payload = decision.as_dict()
                wake_workers(mission_id=mission.pk, reason="approval_decided")
            mission.save()
            outcome = "waiting_approval"
            ctx.progress(f"waiting for approval {mission.waiting_on}")
        elif halt == HALT_YIELD:
            mission.status = MissionStatus.QUEUED
            mission.save()
            journal_append(
                kind="mission.released",
                payload={"worker": ctx.worker_id, "reason": "worker stopping"},
                crew_id=mission.crew_id,
                mission_id=mission.pk,
            )
            wake_workers(mission_id=mission.pk, reason="released")
            outcome = "released"
            ctx.progress("released (worker stopping)")
        elif halt == HALT_PAUSED:
            mission.status = MissionStatus.PAUSED
            mission.control = MissionControl.NONE
            mission.save()
            journal_append(
                kind="mission.paused", payload={"step": mission.steps}, crew_id=mission.crew_id, mission_id=mission.pk
            )
            outcome = MissionStatus.PAUSED
            ctx.progress("paused")
        elif halt == HALT_CANCELLED:
            mission.status = MissionStatus.CANCELLED
            mission.control = MissionControl.NONE
            mission.halt_reason = "cancelled"
            mission.finished_at = timezone.now()
            mission.save()
            journal_append(
                kind="mission.cancelled",
                payload={
                    "status": "cancelled",
                    "output": None,
                    "reason": "cancelled at its next step",
                    "step": mission.steps,
                },
                crew_id=mission.crew_id,
                mission_id=mission.pk,
            )
            withdraw_approvals_on_commit(mission.pk)
            outcome = MissionStatus.CANCELLED
            ctx.progress("cancelled")
        elif halt:
            message = values.get("detail") or FAIL_REASONS.get(halt, halt)
            mission.status = MissionStatus.FAILED
            mission.halt_reason = halt
            mission.error = {"reason": halt, "message": message}
            mission.finished_at = timezone.now()
            mission.control = MissionControl.NONE
            mission.save()
            journal_append(
                kind="mission.failed",
                payload={
                    "status": "failed",
                    "output": None,
                    "reason": halt,
                    "error": message,
                    "step": mission.steps,
                    "cost_microusd": mission.cost_micros,
                },
                crew_id=mission.crew_id,
                mission_id=mission.pk,
            )
            withdraw_approvals_on_commit(mission.pk)
            outcome = MissionStatus.FAILED
            ctx.progress(f"failed: {message}")
        else:
            messages = values.get("messages") or []
            last = messages[-1] if messages else {}
            mission.status = MissionStatus.COMPLETED
            mission.result = text_of(last) if last.get("role") == "assistant" else ""
            mission.control = MissionControl.NONE
            mission.halt_reason = ""
            mission.finished_at = timezone.now()
            mission.save()
            journal_append(
                kind="mission.completed",
                payload={
                    "status": "completed",
                    "output": mission.result,
                    "cost_microusd": mission.cost_micros,
                    "model_calls": mission.model_calls,
                    "tool_calls": mission.tool_calls,
                    "step": mission.steps,
                },
                crew_id=mission.crew_id,
                mission_id=mission.pk,
            )
            outcome = MissionStatus.COMPLETED
            ctx.progress(f"completed in {mission.steps} steps, ${mission.cost_micros / 1e6:.6f}")
    return outcome
