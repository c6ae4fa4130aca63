"""What a tool is: one module declaring its contract, turned into a ``ToolSpec`` by the registry.

A tool module declares::

    NAME = "send_email"
    DESCRIPTION = "..."                 # what the model reads
    PARAMETERS = {...}                  # JSON Schema of the arguments (an object)
    CREDENTIALS = ("smtp",)             # vault secrets it needs (fetched by the Keeper at run time)
    SIDE_EFFECTS = True                 # changes something outside the mission
    def run(args, ctx) -> dict: ...     # idempotent for one ctx.tool_call_id

and optionally ``stage(args, ctx) -> dict`` (prepare the change before governance decides,
idempotently, and return a preview such as a diff for reviewers), ``discard(ctx)`` (undo
what ``stage`` prepared when the call is denied), ``credentials_for(args) -> list[str]``
(credentials that depend on the arguments) and ``available() -> bool``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import jsonschema
from django.conf import settings

if TYPE_CHECKING:
    from apps.tenants.models import Workspace

    from ..models import Agent, Crew, Mission


class ToolError(Exception):
    """A failure the model should hear about (bad input the schema could not express, a refused
    host, a missing record). Its message goes back to the model as the tool's error."""


@dataclass(frozen=True)
class ToolContext:
    workspace: Workspace
    crew: Crew
    mission: Mission
    agent: Agent | None
    tool_call_id: str
    credentials: Mapping[str, str] = field(default_factory=dict)

    def volume_dir(self) -> Path:
        """The crew's directory in the workspace volume (mounted into the crew's container later)."""
        root = Path(settings.CREWS_VOLUME_ROOT)
        path = root / self.workspace.schema_name / str(self.crew.pk)
        path.mkdir(parents=True, exist_ok=True)
        return path


RunFunc = Callable[[dict[str, Any], ToolContext], dict[str, Any]]
StageFunc = Callable[[dict[str, Any], ToolContext], dict[str, Any]]
DiscardFunc = Callable[[ToolContext], None]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    credentials: tuple[str, ...]
    side_effects: bool
    run: RunFunc
    stage: StageFunc | None = None
    discard: DiscardFunc | None = None
    credentials_for: Callable[[dict[str, Any]], list[str]] | None = None
    available: Callable[[], bool] = lambda: True

    def validation_errors(self, arguments: Any) -> list[str]:
        """Every way ``arguments`` break the schema, as sentences a model can act on."""
        if not isinstance(arguments, dict):
            return ["arguments must be a JSON object"]
        validator = jsonschema.Draft202012Validator(self.parameters, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        messages = []
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
            messages.append(f"{where}: {error.message}")
        return messages

    def needed_credentials(self, arguments: Mapping[str, Any]) -> list[str]:
        names = list(self.credentials)
        if self.credentials_for is not None:
            names += [n for n in self.credentials_for(dict(arguments)) if n not in names]
        return names

    def for_model(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def spec_from_module(module: ModuleType) -> ToolSpec:
    missing = [
        attr for attr in ("NAME", "DESCRIPTION", "PARAMETERS", "SIDE_EFFECTS", "run") if not hasattr(module, attr)
    ]
    if missing:
        raise TypeError(f"tool module {module.__name__} lacks {', '.join(missing)}")
    parameters = module.PARAMETERS
    jsonschema.Draft202012Validator.check_schema(parameters)
    if parameters.get("type") != "object":
        raise TypeError(f"tool {module.NAME}: PARAMETERS must describe an object")
    return ToolSpec(
        name=module.NAME,
        description=module.DESCRIPTION,
        parameters=parameters,
        credentials=tuple(getattr(module, "CREDENTIALS", ())),
        side_effects=bool(module.SIDE_EFFECTS),
        run=module.run,
        stage=getattr(module, "stage", None),
        discard=getattr(module, "discard", None),
        credentials_for=getattr(module, "credentials_for", None),
        available=getattr(module, "available", lambda: True),
    )
