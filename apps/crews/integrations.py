"""What crews hands to the apps below it through their registries (they cannot import crews)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection

from .models import Agent, Crew, Mission
from .tools import get_tool


def mission_info(mission_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
    from apps.approvals.registry import MissionInfo
    from apps.tenants.urlconf import workspace_reverse

    tenant = getattr(connection, "tenant", None)
    slug = getattr(tenant, "slug", None)
    found: dict[uuid.UUID, Any] = {}
    for mission in Mission.objects.filter(pk__in=list(mission_ids)).select_related("crew"):
        url = workspace_reverse(slug, "crews:mission-detail", mission_id=str(mission.pk)) if slug else ""
        found[mission.pk] = MissionInfo(
            mission_id=mission.pk,
            goal=mission.goal,
            status=mission.status,
            cost_microusd=mission.cost_micros,
            crew_name=mission.crew.name,
            url=url,
        )
    return found


def validate_arguments(tool_name: str, arguments: dict[str, Any]) -> list[str]:
    spec = get_tool(tool_name)
    if spec is None:
        return [f"Unknown tool {tool_name!r}."]
    return spec.validation_errors(arguments)


def crew_choices() -> list[tuple[str, str]]:
    return [(str(pk), name) for pk, name in Crew.objects.values_list("pk", "name")]


def agent_choices() -> list[tuple[str, str]]:
    return [(str(a.pk), f"{a.name} ({a.crew.name})") for a in Agent.objects.select_related("crew")]


def connect() -> None:
    try:
        from apps.approvals import registry
    except ImportError:  # approvals not installed
        return
    registry.register_mission_info(mission_info)
    registry.register_argument_validator(validate_arguments)
    registry.register_crew_choices(crew_choices)
    registry.register_agent_choices(agent_choices)
