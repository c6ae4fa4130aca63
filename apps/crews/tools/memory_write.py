"""Remember a fact (and, optionally, a relationship between two entities) in the workspace's
memory, attributed to this crew, agent and mission. Writing the same fact twice is merged by
the memory app, so a repeated call does not duplicate it."""

from __future__ import annotations

import importlib
from typing import Any

from .base import ToolContext

NAME = "memory_write"
DESCRIPTION = (
    "Remember one fact for later missions, e.g. 'Sarah Chen is Head of RevOps at Acme Corp', with an "
    "optional relationship (subject, relationship, object) for the knowledge graph."
)
_ENTITY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": 100},
        "key": {"type": "string", "minLength": 1, "maxLength": 300},
        "name": {"type": "string", "maxLength": 300},
    },
    "required": ["label", "key"],
    "additionalProperties": False,
}
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 5000, "description": "The fact, as one sentence."},
        "subject": _ENTITY,
        "relationship": {"type": "string", "maxLength": 100},
        "object": _ENTITY,
        "properties": {"type": "object"},
    },
    "required": ["text"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = True


def _memory() -> Any:
    return importlib.import_module("apps.memory.tools")


def available() -> bool:
    try:
        return hasattr(_memory(), "memory_write")
    except ImportError:
        return False


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return dict(
        _memory().memory_write(
            text=args["text"],
            subject=args.get("subject"),
            relationship=args.get("relationship"),
            object=args.get("object"),
            properties=args.get("properties"),
            crew_id=ctx.crew.pk,
            agent_id=ctx.agent.pk if ctx.agent else None,
            mission_id=ctx.mission.pk,
            source=f"mission {ctx.mission.pk} tool call {ctx.tool_call_id}",
        )
    )
