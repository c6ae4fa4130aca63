"""Approval flows through the real crews worker (its LISTEN/NOTIFY loop, claims, resume), run in
a thread of this process so that it plays this test's offline scripts. Nothing is mocked:
the worker is woken by the decision's pg_notify, not by a poll (its sweep is set to a minute)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import connections
from django.utils import timezone

from apps.approvals import services
from apps.approvals.models import ApprovalRequest
from apps.crews.models import Crew, CrmAccount, Mission, MissionStatus, ToolCall, ToolCallStatus
from apps.crews.runtime.worker import Worker
from apps.crews.services import agent_create, crew_create, mission_create
from apps.llm.providers.offline import ScriptToolCall, ScriptTurn, match_first_user, register_script, unregister_script
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import decider_for, sentinel

pytestmark = [pytest.mark.usefixtures("committed_db"), pytest.mark.slow]

EMAIL = {"to": ["sarah@customer.example"], "subject": "Your question", "body": "Here is the answer."}

test_runs_on_the_test_database = sentinel()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    previous = settings.CREWS_VOLUME_ROOT
    settings.CREWS_VOLUME_ROOT = tmp_path / "crews"
    lines: list[str] = []
    # A one-minute sweep: anything faster than that below came from a notification.
    running = Worker(concurrency=2, sweep_seconds=60, out=lines.append)
    thread = threading.Thread(target=running.run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.request_stop()
        thread.join(60)
        connections.close_all()
        settings.CREWS_VOLUME_ROOT = previous


@pytest.fixture
def script() -> Iterator[Callable[[list[Any]], str]]:
    names: list[str] = []

    def register(turns: list[Any]) -> str:
        marker = f"[approvals-flow {uuid.uuid4().hex[:8]}]"
        register_script(marker, match_first_user(marker), turns, priority=1)
        names.append(marker)
        return marker

    yield register
    for name in names:
        unregister_script(name)


def sent() -> list[str]:
    """Subjects of what the tools emailed (not Quarterdeck's own notifications to reviewers)."""
    return [m.subject for m in mail.outbox if not m.subject.startswith("[Quarterdeck]")]


def crew_with_policy(tools: list[str], tool: str, action: str) -> Crew:
    crew = crew_create(name=f"Flow {uuid.uuid4().hex[:8]}", default_model="offline-small", autonomy="full")
    agent_create(
        crew=crew, name="Agent", role="responder", instructions="Be precise.", tools=tools, model="offline-small"
    )
    services.policy_create(
        fields={
            "name": f"flow {crew.pk.hex[:8]}",
            "priority": 0,
            "tool_pattern": tool,
            "crew_ids": [str(crew.pk)],
            "action": action,
            "approver_roles": ["reviewer"],
            "timeout_seconds": 3600,
        }
    )
    return crew


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    calls = list(ToolCall.objects.values_list("tool", "status", "mission__status", "mission__goal"))
    raise AssertionError(f"timed out waiting for {what or check}; tool calls: {calls}")


def mission_status(mission: Mission, *statuses: str) -> Callable[[], Mission | None]:
    def check() -> Mission | None:
        mission.refresh_from_db()
        return mission if mission.status in statuses else None

    return check


def decide(request_id: Any, reviewer: Any, decision: str, **extra: Any) -> float:
    services.request_decide(
        request_id=request_id, decider=decider_for(reviewer, "reviewer"), decision=decision, **extra
    )  # type: ignore[arg-type]
    return time.monotonic()


def email_mission(acme: Workspace, script: Any, operator: Any, action: str = "require_sync") -> Mission:
    marker = script(
        [ScriptTurn(text="Sending.", tool_calls=[ScriptToolCall("send_email", EMAIL)]), ScriptTurn(text="Finished.")]
    )
    crew = crew_with_policy(["send_email"], "send_email", action)
    return mission_create(crew=crew, goal=f"{marker} reply", created_by_user=operator)


def test_sync_the_mission_waits_and_a_decision_resumes_it_at_once(
    acme: Workspace, worker: Worker, script: Any, operator: Any, reviewer: Any
) -> None:
    mail.outbox.clear()
    with workspace_schema(acme):
        mission = email_mission(acme, script, operator)
        wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), what="the wait")
        request = ApprovalRequest.objects.get(mission_id=mission.pk)
        assert request.mode == "sync" and request.started_by_user_id == operator.pk and sent() == []
        decided = decide(request.pk, reviewer, "approve")
        wait_for(mission_status(mission, MissionStatus.COMPLETED), what="completion")
        assert time.monotonic() - decided < 10  # the sweep is a minute away: the NOTIFY woke it
        assert sent() == ["Your question"]
        request.refresh_from_db()
        assert request.executed_at is not None


def test_sync_denial_reaches_the_model_and_nothing_is_sent(
    acme: Workspace, worker: Worker, script: Any, operator: Any, reviewer: Any
) -> None:
    mail.outbox.clear()
    with workspace_schema(acme):
        mission = email_mission(acme, script, operator)
        wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), what="the wait")
        request = ApprovalRequest.objects.get(mission_id=mission.pk)
        decide(request.pk, reviewer, "deny", comment="Not to customers yet.")
        wait_for(mission_status(mission, MissionStatus.COMPLETED), what="completion")
        assert sent() == []
        call = ToolCall.objects.get(mission=mission)
        assert call.status == ToolCallStatus.DENIED and "Not to customers yet." in call.error


def test_edit_and_approve_runs_the_reviewers_arguments(
    acme: Workspace, worker: Worker, script: Any, operator: Any, reviewer: Any
) -> None:
    mail.outbox.clear()
    with workspace_schema(acme):
        mission = email_mission(acme, script, operator)
        wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), what="the wait")
        request = ApprovalRequest.objects.get(mission_id=mission.pk)
        edited = {**EMAIL, "subject": "Re: your Salesforce question"}
        decide(request.pk, reviewer, "approve", arguments=edited, comment="Better subject.")
        wait_for(mission_status(mission, MissionStatus.COMPLETED), what="completion")
        assert sent() == ["Re: your Salesforce question"]
        call = ToolCall.objects.get(mission=mission)
        assert call.arguments == EMAIL and call.approved_arguments == edited


def test_a_staged_change_shows_its_diff_and_ships_when_approved(
    acme: Workspace, worker: Worker, script: Any, operator: Any, reviewer: Any
) -> None:
    with workspace_schema(acme):
        account = CrmAccount.objects.create(name=f"Initrode {uuid.uuid4().hex[:6]}", stage="trial", plan="Team")
        update = {"account": account.name, "changes": {"stage": "customer"}, "reason": "signed"}
        marker = script(
            [
                ScriptTurn(text="Updating.", tool_calls=[ScriptToolCall("crm_stage_update", update)]),
                ScriptTurn(text="Done."),
            ]
        )
        crew = crew_with_policy(["crm_stage_update"], "crm_stage_update", "require_sync")
        mission = mission_create(crew=crew, goal=f"{marker} update", created_by_user=operator)
        wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), what="the wait")
        request = ApprovalRequest.objects.get(mission_id=mission.pk)
        assert request.diff["diff"] == [{"field": "stage", "before": "trial", "after": "customer"}]
        account.refresh_from_db()
        assert account.stage == "trial"  # staged, not shipped
        decide(request.pk, reviewer, "approve")
        wait_for(mission_status(mission, MissionStatus.COMPLETED), what="completion")
        account.refresh_from_db()
        assert account.stage == "customer"


def test_a_timeout_swept_by_the_worker_resumes_the_mission_with_a_denial(
    acme: Workspace, script: Any, operator: Any, tmp_path: Path
) -> None:
    settings.CREWS_VOLUME_ROOT, previous = tmp_path / "crews", settings.CREWS_VOLUME_ROOT
    running = Worker(concurrency=2, sweep_seconds=0.5, out=lambda line: None)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        with workspace_schema(acme):
            mission = email_mission(acme, script, operator)
            wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), what="the wait")
            ApprovalRequest.objects.filter(mission_id=mission.pk).update(deadline=timezone.now() - timedelta(seconds=1))
            wait_for(mission_status(mission, MissionStatus.COMPLETED), what="the timeout's denial")
            request = ApprovalRequest.objects.get(mission_id=mission.pk)
            assert request.status == "denied" and request.resolution == "timeout"
            assert ToolCall.objects.get(mission=mission).status == ToolCallStatus.DENIED
    finally:
        running.request_stop()
        thread.join(60)
        connections.close_all()
        settings.CREWS_VOLUME_ROOT = previous


def test_async_the_agent_goes_on_and_the_call_runs_once_approved(
    acme: Workspace, worker: Worker, script: Any, operator: Any, reviewer: Any
) -> None:
    mail.outbox.clear()
    with workspace_schema(acme):
        mission = email_mission(acme, script, operator, action="require_async")
        _async_flow(mission, reviewer)


def _async_flow(mission: Mission, reviewer: Any) -> None:
    wait_for(mission_status(mission, MissionStatus.COMPLETED), what="the mission to go on and finish")
    request = ApprovalRequest.objects.get(mission_id=mission.pk)
    assert request.mode == "async" and request.status == "pending" and sent() == []
    decide(request.pk, reviewer, "approve")
    wait_for(sent, what="the queued email")
    assert sent() == ["Your question"]
    wait_for(lambda: ApprovalRequest.objects.get(pk=request.pk).executed_at, what="executed_at")
    call = ToolCall.objects.get(mission=mission)
    assert call.status == ToolCallStatus.SUCCEEDED
