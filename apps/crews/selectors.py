"""Reads of the crews app (run with the workspace's schema active)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Count, QuerySet

from apps.audit.models import JournalEntry
from apps.core.errors import NotFound

from .models import Agent, Crew, Mission, MissionMessage, ToolCall


def crew_list(*, include_inactive: bool = True) -> QuerySet[Crew]:
    queryset = Crew.objects.annotate(agent_count=Count("agents", distinct=True))
    return queryset if include_inactive else queryset.filter(is_active=True)


def crew_get(*, crew_id: uuid.UUID | str) -> Crew:
    crew = Crew.objects.filter(pk=_uuid(crew_id)).first()
    if crew is None:
        raise NotFound("No such crew.")
    return crew


def agent_list(*, crew: Crew | None = None) -> QuerySet[Agent]:
    queryset = Agent.objects.select_related("crew")
    return queryset.filter(crew=crew) if crew is not None else queryset


def agent_get(*, agent_id: uuid.UUID | str) -> Agent:
    agent = Agent.objects.select_related("crew").filter(pk=_uuid(agent_id)).first()
    if agent is None:
        raise NotFound("No such agent.")
    return agent


def mission_list(*, status: str | None = None, crew_id: str | None = None) -> QuerySet[Mission]:
    queryset = Mission.objects.select_related("crew", "current_agent")
    if status:
        queryset = queryset.filter(status=status)
    if crew_id:
        queryset = queryset.filter(crew_id=_uuid(crew_id))
    return queryset


def mission_get(*, mission_id: uuid.UUID | str) -> Mission:
    mission = (
        Mission.objects.select_related("crew", "current_agent", "forked_from").filter(pk=_uuid(mission_id)).first()
    )
    if mission is None:
        raise NotFound("No such mission.")
    return mission


def mission_trajectory(*, mission: Mission, with_checkpoints: bool = True) -> dict[str, Any]:
    """What the mission did, step by step: its messages, tool calls and checkpoints."""
    from .runtime import checkpoints

    agents = {a.pk: a.name for a in Agent.objects.filter(crew_id=mission.crew_id)}
    messages = [
        {
            "seq": m.seq,
            "role": m.role,
            "agent": agents.get(m.agent_id) if m.agent_id else None,
            "content": m.content,
            "tool_calls": m.tool_calls,
            "tool_call_id": m.tool_call_id or None,
            "model": m.model or None,
            "cost_microusd": m.cost_micros,
            "created_at": m.created_at.isoformat(),
        }
        for m in MissionMessage.objects.filter(mission=mission).order_by("seq")
    ]
    tool_calls = [
        {
            "tool_call_id": t.tool_call_id,
            "tool": t.tool,
            "agent": agents.get(t.agent_id) if t.agent_id else None,
            "arguments": t.arguments,
            "approved_arguments": t.approved_arguments,
            "status": t.status,
            "side_effects": t.side_effects,
            "approval_request_id": t.approval_request_id or None,
            "result": t.result,
            "error": t.error or None,
            "queued": t.queued,
            "started_at": t.started_at.isoformat() if t.started_at else None,
            "finished_at": t.finished_at.isoformat() if t.finished_at else None,
        }
        for t in ToolCall.objects.filter(mission=mission).order_by("created_at")
    ]
    result: dict[str, Any] = {"messages": messages, "tool_calls": tool_calls}
    if with_checkpoints:
        result["checkpoints"] = [
            {"checkpoint_id": c.checkpoint_id, "step": c.step, "next": list(c.next), "messages": c.messages}
            for c in checkpoints.history(mission=mission)
        ]
    return result


def mission_step_at_seq(*, mission: Mission, seq: int) -> int:
    """The last step the mission had finished at journal position ``seq`` (0: none yet)."""
    if not JournalEntry.objects.filter(mission_id=mission.pk, seq=seq).exists():
        raise NotFound(f"Journal entry #{seq} is not one of this mission's.", details={"from_seq": seq})
    entry = (
        JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.step", seq__lte=seq).order_by("-seq").first()
    )
    if entry is not None:
        return int(entry.payload.get("step", 0))
    forked = JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.forked", seq__lte=seq).first()
    return int(forked.payload.get("from_step", 0)) if forked is not None else 0


def mission_seq_for_step(*, mission: Mission, step: int) -> int:
    """The journal position at the end of ``step`` (its ``mission.step`` entry), else the
    mission's first entry."""
    entry = (
        JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.step", payload__step=step)
        .order_by("-seq")
        .first()
    )
    if entry is None:
        entry = JournalEntry.objects.filter(mission_id=mission.pk).order_by("seq").first()
    if entry is None:
        raise NotFound("The mission has no journal entries.")
    return int(entry.seq)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("Not found.") from None
