from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.crews.models import Crew, Mission, MissionStatus
from apps.crews.runtime.runner import run_mission
from apps.crews.runtime.worker import claim_missions
from apps.crews.services import agent_create, crew_create, mission_create
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.http import JsonHandler


@pytest.fixture(autouse=True)
def crews_volume(settings: Any, tmp_path: Path) -> Path:
    settings.CREWS_VOLUME_ROOT = tmp_path / "crews"
    return settings.CREWS_VOLUME_ROOT  # type: ignore[no-any-return]


@pytest.fixture
def in_acme(acme: Workspace) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def make_crew(
    *,
    name: str | None = None,
    tools: list[str] | None = None,
    agents: int = 1,
    **crew_fields: Any,
) -> Crew:
    """A crew with ``agents`` agents on the offline models (call in a workspace schema)."""
    crew_fields.setdefault("autonomy", "full")
    crew = crew_create(name=name or unique("Crew"), default_model="offline-small", **crew_fields)
    for position in range(agents):
        agent_create(
            crew=crew,
            name=["Triage", "Responder", "Third"][position],
            role=["triage agent", "responder", "helper"][position],
            instructions="Be precise.",
            tools=tools if tools is not None else ["crm_lookup", "write_note", "send_email", "handoff"],
            model="offline-small" if position == 0 else "offline-medium",
            position=position,
        )
    return crew


def start(crew: Crew, goal: str, **kwargs: Any) -> Mission:
    return mission_create(crew=crew, goal=goal, **kwargs)


def run_to_rest(
    workspace: Workspace,
    mission: Mission,
    *,
    worker_id: str = "qd-worker-test",
    rounds: int = 10,
    progress: Any = None,
) -> Mission:
    """Claim and run ``mission`` in this thread until it stops needing a worker."""
    for _ in range(rounds):
        mission.refresh_from_db()
        if mission.status not in (MissionStatus.QUEUED, MissionStatus.RUNNING):
            break
        Mission.objects.filter(pk=mission.pk).update(claimed_by="", lease_expires_at=None)
        ids = claim_missions(workspace=workspace, worker_id=worker_id, limit=1000, alive=[worker_id])
        assert mission.pk in ids
        run_mission(
            workspace=workspace, mission_id=mission.pk, worker_id=worker_id, progress=progress or (lambda line: None)
        )
    mission.refresh_from_db()
    return mission


def handle(**kwargs: Any) -> Any:
    """``handle_tool_call`` as the tool node uses it: the result is recorded in a transaction."""
    import dataclasses

    from django.db import transaction

    from apps.crews.runtime.executor import handle_tool_call

    outcome = handle_tool_call(**kwargs)
    if outcome.pending is not None:
        with transaction.atomic():
            outcome.pending()
    return dataclasses.replace(outcome, pending=None)


def now() -> Any:
    return timezone.now()


@pytest.fixture
def script() -> Iterator[Any]:
    """``script(marker, turns)`` registers an offline script for missions whose goal contains
    ``marker`` (in this process only), and removes it afterwards."""
    from apps.llm.providers.offline import match_first_user, register_script, unregister_script

    names: list[str] = []

    def register(marker: str, turns: list[Any]) -> str:
        name = f"test-{marker}"
        register_script(name, match_first_user(marker), turns, priority=1)
        names.append(name)
        return marker

    yield register
    for name in names:
        unregister_script(name)


class _Api(JsonHandler):
    """A local HTTP API for the http_request tool: records each POST and answers 201."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append(  # type: ignore[attr-defined]
            {"path": self.path, "body": json.loads(body or b"null"), "headers": dict(self.headers)}
        )
        self.send_json(201, {"ok": True, "ticket": "T-9"})


@pytest.fixture
def api_server() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
