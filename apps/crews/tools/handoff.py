"""Hand the mission to another agent of the crew; the runtime switches agents after this call."""

from __future__ import annotations

from typing import Any

from ..models import Agent
from .base import ToolContext, ToolError

NAME = "handoff"
DESCRIPTION = (
    "Pass the mission to another agent of your crew (by name), with a note of what you found "
    "and what is left to do. Your turn ends after this call."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "minLength": 1, "maxLength": 100},
        "note": {"type": "string", "maxLength": 10000},
    },
    "required": ["to", "note"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = False


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    agent = Agent.objects.filter(crew=ctx.crew, name__iexact=args["to"].strip()).first()
    if agent is None:
        names = ", ".join(Agent.objects.filter(crew=ctx.crew).values_list("name", flat=True))
        raise ToolError(f"No agent named {args['to']!r} in this crew (agents: {names}).")
    if ctx.agent is not None and agent.pk == ctx.agent.pk:
        raise ToolError("You cannot hand the mission to yourself.")
    return {"handoff_to": agent.name, "agent_id": str(agent.pk), "note": args["note"]}
