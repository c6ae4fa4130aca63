"""What the runtime's ``memory_search`` and ``memory_write`` tools (and the mission's starting
context) call. Plain keyword arguments in, JSON-ready dicts out; the active workspace schema
decides whose memory it is, and the crew/agent ids decide what an agent may see.

The crews app wraps these in its tool registry (gating, journaling of the tool call itself);
these functions journal the memory change they make.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from . import context, selectors, services

UUIDish = uuid.UUID | str | None

# JSON Schemas of the tools' arguments, for the model-facing tool definitions.
MEMORY_SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What to look for, in plain words."},
        "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
        "filters": {"type": "object", "description": "Metadata that results must contain."},
        "hybrid": {"type": "boolean", "default": False, "description": "Also rank by keyword match."},
    },
    "required": ["query"],
    "additionalProperties": False,
}
_ENTITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "description": "Person, Company, Project, Ticket, Plan, ..."},
        "key": {"type": "string", "description": "Email for a Person, a stable id otherwise."},
        "name": {"type": "string"},
    },
    "required": ["label", "key"],
    "additionalProperties": False,
}
MEMORY_WRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The fact, as one sentence."},
        "subject": _ENTITY_SCHEMA,
        "relationship": {"type": "string", "description": "WORKS_AT, ROLE, ON_PLAN, OPENED, ABOUT, ..."},
        "object": _ENTITY_SCHEMA,
        "properties": {"type": "object", "description": "Properties of the relationship, e.g. {title: CTO}."},
    },
    "required": ["text"],
    "additionalProperties": False,
}


def memory_search(
    *,
    query: str,
    k: int = 5,
    crew_id: UUIDish = None,
    agent_id: UUIDish = None,
    filters: Mapping[str, Any] | None = None,
    hybrid: bool = False,
) -> list[dict[str, Any]]:
    hits = selectors.memory_search(query=query, k=k, crew_id=crew_id, agent_id=agent_id, filters=filters, hybrid=hybrid)
    return [hit.as_dict() for hit in hits]


def memory_write(
    *,
    text: str,
    subject: Mapping[str, Any] | str | None = None,
    relationship: str | None = None,
    object: Mapping[str, Any] | str | None = None,
    properties: Mapping[str, Any] | None = None,
    crew_id: UUIDish = None,
    agent_id: UUIDish = None,
    mission_id: UUIDish = None,
    source: str = "agent",
) -> dict[str, Any]:
    fact = services.memory_write_fact(
        text=text,
        subject=subject,
        relationship=relationship,
        object=object,
        properties=properties,
        crew_id=crew_id,
        agent_id=agent_id,
        mission_id=mission_id,
        source=source,
    )
    return {
        "fact_id": str(fact.id),
        "text": fact.text,
        "relationship_uid": str(fact.relationship_uid) if fact.relationship_uid else None,
        "status": fact.status,
    }


def memory_context(
    *,
    subject: str,
    token_budget: int = 400,
    query: str | None = None,
    crew_id: UUIDish = None,
    agent_id: UUIDish = None,
) -> dict[str, Any]:
    return context.context_for_subject(
        subject=subject, token_budget=token_budget, query=query, crew_id=crew_id, agent_id=agent_id
    ).as_dict()
