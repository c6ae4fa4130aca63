"""One model turn for an agent, through the gateway (routing, budgets, ledger, journal).

The conversation is kept in the graph state as plain dicts in the gateway's message format
(``apps.llm.types.Message.to_dict()``), one tool result per message; the request merges
consecutive messages of the same role, as the providers require (all results of one turn in
the user message that follows it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.llm.types import CallContext, ChatRequest, ChatResponse, Message, TextBlock, ToolResultBlock
from apps.llm.types import ToolSpec as ModelTool

from ..models import Agent, Crew, Mission
from ..tools import ToolSpec


@dataclass(frozen=True)
class Turn:
    message: dict[str, Any]  # the assistant message, as stored in the state
    text: str
    tool_calls: list[dict[str, Any]]
    model: str
    cost_microusd: int
    stop_reason: str
    replayed: bool


def mission_prompt(mission: Mission) -> str:
    text = f"Mission: {mission.goal}"
    if mission.input:
        text += "\n\nInput:\n" + json.dumps(mission.input, indent=2, sort_keys=True, ensure_ascii=False)
    return text


def system_prompt(*, crew: Crew, agent: Agent, roster: Sequence[Agent]) -> str:
    lines = [f'You are {agent.name}, the {agent.role} of the crew "{crew.name}".']
    if crew.purpose:
        lines.append(crew.purpose)
    if agent.instructions:
        lines.append(agent.instructions)
    others = [a for a in roster if a.pk != agent.pk]
    if others:
        lines.append("Your crew: " + "; ".join(f"{a.name} ({a.role})" for a in others) + ".")
        if "handoff" in agent.tools:
            lines.append("Use the handoff tool to pass the mission to one of them.")
    return "\n\n".join(lines)


def _merged(messages: Sequence[dict[str, Any]]) -> list[Message]:
    merged: list[Message] = []
    for raw in messages:
        message = Message.from_dict({"role": raw["role"], "content": raw["content"]})
        if merged and merged[-1].role == message.role:
            previous = merged.pop()
            message = Message(role=message.role, content=(*previous.blocks, *message.blocks))
        merged.append(message)
    return merged


def user_message(text: str, **meta: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, "meta": meta}


def tool_result_message(tool_call_id: str, content: str, *, is_error: bool, **meta: Any) -> dict[str, Any]:
    block = ToolResultBlock(tool_use_id=tool_call_id, content=content, is_error=is_error)
    return {"role": "user", "content": [block.to_dict()], "meta": meta}


def call_model(
    *,
    mission: Mission,
    agent: Agent,
    roster: Sequence[Agent],
    messages: Sequence[dict[str, Any]],
    tools: Sequence[ToolSpec],
    request_id: str,
) -> Turn:
    """Ask the agent's model for its next turn. Raises BudgetExceeded when a budget blocks it.

    ``request_id`` is derived from the mission and the turn number, so a turn that runs again
    after a crash gets the recorded response back and is not charged a second time.
    """
    from apps.llm import gateway

    options = agent.settings or {}
    request = ChatRequest(
        messages=_merged(messages),
        system=system_prompt(crew=mission.crew, agent=agent, roster=roster),
        tools=[ModelTool(name=t.name, description=t.description, input_schema=t.parameters) for t in tools],
        max_tokens=int(options.get("max_tokens", 1024)),
        temperature=options.get("temperature"),
    )
    context = CallContext(
        crew_id=mission.crew_id,
        mission_id=mission.pk,
        agent_id=agent.pk,
        request_id=request_id,
        agent_model=agent.model or None,
        crew_model=mission.crew.default_model or None,
        purpose=f"{agent.name}: {mission.goal[:80]}",
    )
    response: ChatResponse = gateway.chat(request=request, context=context)
    message = response.as_message().to_dict()
    message["meta"] = {
        "agent_id": str(agent.pk),
        "agent": agent.name,
        "model": response.model,
        "cost_microusd": response.cost_microusd,
        "request_id": response.request_id,
    }
    return Turn(
        message=message,
        text=response.text,
        tool_calls=[{"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in response.tool_calls],
        model=response.model,
        cost_microusd=response.cost_microusd,
        stop_reason=response.stop_reason,
        replayed=response.replayed,
    )


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if b.get("type") == TextBlock("").type)


def tool_calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str) or message.get("role") != "assistant":
        return []
    return [
        {"id": b["id"], "name": b["name"], "arguments": b.get("arguments") or {}}
        for b in content or []
        if b.get("type") == "tool_use"
    ]


def answered_ids(messages: Sequence[dict[str, Any]]) -> set[str]:
    ids = set()
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user" and not isinstance(content, str):
            ids |= {b["tool_use_id"] for b in content or [] if b.get("type") == "tool_result"}
    return ids
