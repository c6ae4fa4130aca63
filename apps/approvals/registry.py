"""What the approvals app learns from the apps above it, without importing them.

``crews`` depends on ``approvals``; the reverse import is forbidden. So the runtime hands
display information over in the gate call, and may register providers here (from its
``AppConfig.ready()``) for what the inbox and the admin show later:

- ``register_mission_info(func)``: ``func(mission_ids) -> {mission_id: MissionInfo}``, for the
  live cost, status and link of missions shown in the inbox;
- ``register_argument_validator(func)``: ``func(tool_name, arguments) -> [problems]``, so an
  edit-and-approve with arguments the tool would reject is refused at once;
- ``register_crew_choices(func)`` / ``register_agent_choices(func)``: ``func() -> [(uuid, label)]``
  for the policy form in the admin.

Every provider is optional and fails soft: display information is never worth an error.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MissionInfo:
    mission_id: uuid.UUID
    goal: str = ""
    status: str = ""
    cost_microusd: int | None = None
    crew_name: str = ""
    url: str = ""


MissionInfoProvider = Callable[[Sequence[uuid.UUID]], Mapping[uuid.UUID, MissionInfo]]
ArgumentValidator = Callable[[str, dict[str, Any]], Sequence[str]]
ChoicesProvider = Callable[[], Sequence[tuple[str, str]]]

_mission_info: list[MissionInfoProvider] = []
_validators: list[ArgumentValidator] = []
_crew_choices: list[ChoicesProvider] = []
_agent_choices: list[ChoicesProvider] = []


def _add(bucket: list[Any], func: Any) -> None:
    if func not in bucket:
        bucket.append(func)


def register_mission_info(func: MissionInfoProvider) -> None:
    _add(_mission_info, func)


def register_argument_validator(func: ArgumentValidator) -> None:
    _add(_validators, func)


def register_crew_choices(func: ChoicesProvider) -> None:
    _add(_crew_choices, func)


def register_agent_choices(func: ChoicesProvider) -> None:
    _add(_agent_choices, func)


def mission_info(mission_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MissionInfo]:
    found: dict[uuid.UUID, MissionInfo] = {}
    if not mission_ids:
        return found
    for provider in _mission_info:
        try:
            found.update(provider(list(mission_ids)))
        except Exception:
            logger.exception("mission info provider %r failed", provider)
    return found


def validate_arguments(tool_name: str, arguments: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for validator in _validators:
        problems.extend(validator(tool_name, arguments))
    return problems


def crew_choices() -> list[tuple[str, str]]:
    return _choices(_crew_choices)


def agent_choices() -> list[tuple[str, str]]:
    return _choices(_agent_choices)


def _choices(bucket: list[ChoicesProvider]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for provider in bucket:
        try:
            out.extend((str(value), label) for value, label in provider())
        except Exception:
            logger.exception("choices provider %r failed", provider)
    return out
