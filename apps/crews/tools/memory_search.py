"""Search the workspace's memory (semantic, optionally hybrid) as this crew and agent may see it."""

from __future__ import annotations

import importlib
from typing import Any

from .base import ToolContext

NAME = "memory_search"
DESCRIPTION = (
    "Search what the crew remembers (facts about customers, past tickets, decisions). Returns the best matches."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "minLength": 1,
            "maxLength": 1000,
            "description": "What to look for, in plain words.",
        },
        "k": {"type": "integer", "minimum": 1, "maximum": 20},
        "filters": {"type": "object", "description": "Metadata that results must contain."},
        "hybrid": {"type": "boolean", "description": "Also rank by keyword match."},
    },
    "required": ["query"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = False


def _memory() -> Any:
    return importlib.import_module("apps.memory.tools")


def available() -> bool:
    try:
        return hasattr(_memory(), "memory_search")
    except ImportError:
        return False


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    hits = _memory().memory_search(
        query=args["query"],
        k=int(args.get("k", 5)),
        filters=args.get("filters"),
        hybrid=bool(args.get("hybrid", False)),
        crew_id=ctx.crew.pk,
        agent_id=ctx.agent.pk if ctx.agent else None,
    )
    return {"results": hits}
