"""The mission graph: START → (agent | tools); agent → tools | END; tools → tools | agent | END.

- ``agent`` asks the active agent's model for a turn through the gateway.
- ``tools`` handles ONE pending tool call per step (validate → approvals gate → vault → tool
  → journal; see ``executor``). One call per step keeps at most one ``interrupt()`` in a node
  run, so a resume value always answers the call that asked for it, and each call gets its
  own checkpoint.
- Every node first renews the worker's claim (LostClaim if it lapsed) and looks at the
  mission's control (cancel, pause), the worker's stop flag and the limits; when one applies
  it ends the run with ``halt`` set and writes nothing else, so the mission can continue from
  that checkpoint later (resume, retry, another worker).
- The entry routes by state: a conversation whose last assistant turn has unanswered tool
  calls goes to ``tools``, else to ``agent``; so a resumed, forked or retried mission
  continues where its state says.

State is plain JSON (messages in the gateway's format), so checkpoints are readable and a
fork is a copy of values.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from django.db import transaction
from django.utils import timezone
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from apps.audit.services import journal_append
from apps.budgets.errors import BudgetExceeded
from apps.core.context import Actor, acting_as
from apps.tenants.access import workspace_schema

from ..models import TOOL_CALL_TERMINAL, Agent, Mission, MissionControl, MissionMessage, ToolCall
from ..tools import get_tool
from .context import RunContext
from .executor import handle_tool_call
from .model import answered_ids, call_model, mission_prompt, text_of, tool_calls_of, tool_result_message, user_message


class MissionState(TypedDict, total=False):
    messages: Annotated[list[dict[str, Any]], operator.add]
    step: int  # steps taken: model turns and tool calls
    model_calls: int
    agent_id: str  # the active agent
    halt: str | None  # why the run stopped early (cancelled, paused, yield, max_steps, ...)
    detail: str
    delivered: Annotated[list[str], operator.add]  # queued calls whose outcome reached the model


HALT_CANCELLED = "cancelled"
HALT_PAUSED = "paused"
HALT_YIELD = "yield"  # the worker is stopping: another one continues
HALT_MAX_STEPS = "max_steps"
HALT_MAX_WALL = "max_wall_time"
HALT_BUDGET = "budget"


def initial_state(mission: Mission, first_agent: Agent) -> MissionState:
    return {
        "messages": [user_message(mission_prompt(mission), kind="mission")],
        "step": 0,
        "model_calls": 0,
        "agent_id": str(first_agent.pk),
        "halt": None,
        "detail": "",
        "delivered": [],
    }


def fork_values(values: dict[str, Any]) -> dict[str, Any]:
    copy = {key: value for key, value in values.items() if key in MissionState.__annotations__}
    copy["halt"] = None
    copy["detail"] = ""
    return copy


def pending_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            answered = answered_ids(messages[index + 1 :])
            return [call for call in tool_calls_of(messages[index]) if call["id"] not in answered]
    return []


def _last_assistant(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next((m for m in reversed(messages) if m.get("role") == "assistant"), {})


def agent_actor(agent: Agent) -> Actor:
    return Actor(kind="agent", id=str(agent.pk), label=f"{agent.name} ({agent.crew.name})"[:150])


# --- routing ------------------------------------------------------------------------------


def route_entry(state: MissionState) -> str:
    return "tools" if pending_tool_calls(state.get("messages", [])) else "agent"


def route_after_agent(state: MissionState) -> str:
    if state.get("halt"):
        return END
    return "tools" if pending_tool_calls(state.get("messages", [])) else END


def route_after_tools(state: MissionState) -> str:
    if state.get("halt"):
        return END
    return "tools" if pending_tool_calls(state.get("messages", [])) else "agent"


# --- nodes --------------------------------------------------------------------------------


def _halt_reason(mission: Mission, ctx: RunContext, state: MissionState) -> str | None:
    if mission.control == MissionControl.CANCEL:
        return HALT_CANCELLED
    if mission.control == MissionControl.PAUSE:
        return HALT_PAUSED
    if ctx.stop.is_set():
        return HALT_YIELD
    if state.get("step", 0) >= mission.max_steps:
        return HALT_MAX_STEPS
    if ctx.running_seconds(mission) > mission.max_wall_seconds:
        return HALT_MAX_WALL
    return None


def _agent(roster: list[Agent], agent_id: str | None) -> Agent:
    for agent in roster:
        if str(agent.pk) == agent_id:
            return agent
    return roster[0]


def _late_updates(mission: Mission, state: MissionState) -> tuple[list[str], list[dict[str, Any]]]:
    """Outcomes of queued (async) calls decided since, as update messages for the model."""
    delivered = set(state.get("delivered") or [])
    records = [
        r
        for r in ToolCall.objects.filter(mission=mission, queued=True, status__in=TOOL_CALL_TERMINAL).order_by(
            "finished_at", "created_at"
        )
        if str(r.pk) not in delivered
    ]
    messages = []
    for record in records:
        if record.status == "succeeded":
            text = f"Update: your queued call {record.tool} ({record.tool_call_id}) was approved and ran. Result: "
            text += str(record.result)
        else:
            text = f"Update: your queued call {record.tool} ({record.tool_call_id}) did not run: {record.error}"
        messages.append(user_message(text, kind="late_result", tool_call_id=record.tool_call_id))
    if records:
        ToolCall.objects.filter(pk__in=[r.pk for r in records], delivered_at__isnull=True).update(
            delivered_at=timezone.now()
        )
    return [str(r.pk) for r in records], messages


def _sync_messages(
    mission: Mission, messages: list[dict[str, Any]], first_new: int, step: int, *, agent: Agent | None
) -> None:
    """Mirror the conversation into MissionMessage (rows ``first_new``.. are this step's) and
    journal each update the runtime added. Re-running a step rewrites its rows, journals once."""
    existing = set(MissionMessage.objects.filter(mission=mission).values_list("seq", flat=True))
    rows: list[MissionMessage] = []
    late: list[tuple[MissionMessage, str]] = []
    for seq, message in enumerate(messages):
        if seq < first_new and seq in existing:
            continue
        meta = message.get("meta") or {}
        content = message.get("content")
        tool_call_id = ""
        if isinstance(content, list) and content and content[0].get("type") == "tool_result":
            tool_call_id = content[0].get("tool_use_id", "")
            text = str(content[0].get("content", ""))
            role = "tool"
        else:
            text = text_of(message)
            role = message["role"]
        row = MissionMessage(
            mission=mission,
            seq=seq,
            role=role,
            agent_id=meta.get("agent_id") or (agent.pk if agent and role == "assistant" else None),
            content=text,
            tool_calls=tool_calls_of(message),
            tool_call_id=tool_call_id,
            model=meta.get("model", ""),
            cost_micros=int(meta.get("cost_microusd") or 0),
            request_id=meta.get("request_id", ""),
        )
        rows.append(row)
        if seq not in existing and meta.get("kind") == "late_result":
            late.append((row, str(meta.get("tool_call_id", ""))))
    if rows:
        MissionMessage.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["mission", "seq"],
            update_fields=[
                "role",
                "agent",
                "content",
                "tool_calls",
                "tool_call_id",
                "model",
                "cost_micros",
                "request_id",
            ],
        )
    for row, about in late:
        journal_append(
            kind="mission.message",
            payload={"seq": row.seq, "role": row.role, "content": row.content, "step": step, "tool_call_id": about},
            crew_id=mission.crew_id,
            mission_id=mission.pk,
        )


def mission_cost(mission: Mission, messages: list[dict[str, Any]]) -> int:
    """What this mission's own model turns cost (a fork's copied turns were paid by its origin)."""
    prefix = f"{mission.pk}:"
    return sum(
        int((m.get("meta") or {}).get("cost_microusd") or 0)
        for m in messages
        if str((m.get("meta") or {}).get("request_id", "")).startswith(prefix)
    )


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _journal_step(mission: Mission, step: int, node: str, agent: Agent, **extra: Any) -> None:
    if mission.steps >= step:
        # This step was recorded (with the mission's step count, in one transaction) by an
        # attempt that died before LangGraph saved its checkpoint; this run repeats it.
        return
    journal_append(
        kind="mission.step",
        payload={"step": step, "node": node, "agent": agent.name, **extra},
        crew_id=mission.crew_id,
        mission_id=mission.pk,
        agent_id=agent.pk,
    )


def _progress(
    mission: Mission, step: int, *, agent: Agent | None = None, model_calls: int | None = None, cost: int | None = None
) -> None:
    changes: dict[str, Any] = {"steps": step, "updated_at": timezone.now()}
    if cost is not None:
        changes["cost_micros"] = cost
    if agent is not None:
        changes["current_agent"] = agent
    if model_calls is not None:
        changes["model_calls"] = model_calls
    Mission.objects.filter(pk=mission.pk).update(**changes)


def agent_step(state: MissionState, ctx: RunContext) -> dict[str, Any]:
    started = time.perf_counter()
    mission = ctx.mission()
    halt = _halt_reason(mission, ctx, state)
    if halt:
        return {"halt": halt}
    step = state.get("step", 0) + 1
    roster = ctx.roster(mission)
    agent = _agent(roster, state.get("agent_id"))
    delivered, updates = _late_updates(mission, state)
    history = list(state.get("messages", []))
    conversation = history + updates
    turn_number = state.get("model_calls", 0) + 1
    tools = [spec for spec in (get_tool(name) for name in agent.tools or []) if spec is not None]
    with acting_as(agent_actor(agent)):
        try:
            turn = call_model(
                mission=mission,
                agent=agent,
                roster=roster,
                messages=conversation,
                tools=tools,
                # One id per logical turn, the same on every attempt: the gateway answers a
                # repeated id from its record, so a re-run step is not charged twice.
                request_id=f"{mission.pk}:turn:{turn_number}",
            )
        except BudgetExceeded as exc:
            return {"halt": HALT_BUDGET, "detail": exc.message}
        turn.message["meta"]["stop_reason"] = turn.stop_reason
        new = [*updates, turn.message]
        with transaction.atomic():
            everything = [*conversation, turn.message]
            _sync_messages(mission, everything, len(history), step, agent=agent)
            _progress(mission, step, agent=agent, model_calls=turn_number, cost=mission_cost(mission, everything))
            _journal_step(
                mission,
                step,
                "agent",
                agent,
                request_id=str(turn.message["meta"]["request_id"]),
                tool_calls=[c["name"] for c in turn.tool_calls],
                content=turn.text[:4000],
                duration_ms=_ms(started),
            )
    ctx.progress(
        f"step {step}: {agent.name} turn {turn_number} on {turn.model}"
        + (f" → {', '.join(c['name'] for c in turn.tool_calls)}" if turn.tool_calls else " → final answer")
        + f" (${turn.cost_microusd / 1e6:.6f}{', replayed' if turn.replayed else ''})"
    )
    return {
        "messages": new,
        "step": step,
        "model_calls": turn_number,
        "agent_id": str(agent.pk),
        "delivered": delivered,
        "halt": None,
    }


def tools_step(state: MissionState, ctx: RunContext) -> dict[str, Any]:
    started = time.perf_counter()
    mission = ctx.mission()
    halt = _halt_reason(mission, ctx, state)
    if halt:
        return {"halt": halt}
    step = state.get("step", 0) + 1
    messages = list(state.get("messages", []))
    call = pending_tool_calls(messages)[0]
    turn = _last_assistant(messages)
    roster = ctx.roster(mission)
    agent = _agent(roster, (turn.get("meta") or {}).get("agent_id") or state.get("agent_id"))
    with acting_as(agent_actor(agent)):
        outcome = handle_tool_call(
            workspace=ctx.workspace, mission=mission, agent=agent, call=call, step=step, reasoning=text_of(turn)
        )
        result = tool_result_message(
            call["id"], outcome.content, is_error=outcome.is_error, tool=call["name"], status=outcome.status
        )
        update: dict[str, Any] = {"messages": [result], "step": step}
        next_agent = agent
        if outcome.handoff_agent_id and outcome.handoff_agent_id != str(agent.pk):
            next_agent = _agent(roster, outcome.handoff_agent_id)
            update["agent_id"] = str(next_agent.pk)
        # Journal entries last: the workspace's journal takes one writer at a time, and holds
        # it from the first entry to the commit.
        with transaction.atomic():
            _sync_messages(mission, [*messages, result], len(messages), step, agent=agent)
            _progress(mission, step, agent=next_agent)
            if outcome.pending is not None:
                outcome.pending()  # the tool's result, recorded with the step
            if next_agent is not agent and step > mission.steps:  # (once, like mission.step)
                journal_append(
                    kind="mission.handoff",
                    payload={
                        "from_agent": agent.name,
                        "to_agent": next_agent.name,
                        "note": str(call.get("arguments", {}).get("note", "")),
                        "step": step,
                    },
                    crew_id=mission.crew_id,
                    mission_id=mission.pk,
                    agent_id=agent.pk,
                )
            _journal_step(
                mission,
                step,
                "tools",
                agent,
                tool_call_id=call["id"],
                tool_name=call["name"],
                status=outcome.status,
                duration_ms=_ms(started),
            )
    ctx.progress(f"step {step}: {agent.name} {call['name']} → {outcome.status or 'done'}")
    return update


def _node(step: Callable[[MissionState, RunContext], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    # Not functools.wraps: LangGraph reads the signature to inject ``runtime``.
    def node(state: MissionState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = runtime.context
        # LangGraph may run a node on another thread: name the workspace on this one.
        with workspace_schema(ctx.workspace):
            return step(state, ctx)

    node.__name__ = step.__name__
    return node


def _builder() -> StateGraph[Any, Any, Any, Any]:
    builder = StateGraph(MissionState, context_schema=RunContext)
    builder.add_node("agent", _node(agent_step))
    builder.add_node("tools", _node(tools_step))
    builder.add_conditional_edges(START, route_entry, ["agent", "tools"])
    builder.add_conditional_edges("agent", route_after_agent, ["tools", END])
    builder.add_conditional_edges("tools", route_after_tools, ["tools", "agent", END])
    return builder


_BUILDER = _builder()


def compile_graph(checkpointer: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    return _BUILDER.compile(checkpointer=checkpointer)
