"""Durability with real processes: kill -9 a worker mid-mission and another one resumes it
from the last checkpoint, with no side effect run twice and no model call charged twice;
several workers never run the same mission; SIGTERM releases missions cleanly; a new
mission wakes an idle worker through LISTEN/NOTIFY, not a sweep."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.budgets.models import LedgerEntry
from apps.crews.models import Mission, MissionMessage, MissionStatus, ToolCall, ToolCallStatus
from apps.crews.offline_scripts import BENCH_MARKER, DRILL_MARKER
from apps.llm.models import LlmCall
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.crews.conftest import make_crew, start, unique
from tests.crews.processes import WorkerProcess, wait_until
from tests.http import JsonHandler

# committed_db, not the django_db mark: the workers are other processes and must see the data.
pytestmark = [pytest.mark.slow]

DRILL_TOOLS = ["send_email", "http_request", "write_note", "crm_lookup"]


class _SlowApi(JsonHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        key = self.headers.get("Idempotency-Key", "")
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.received.append(key)
        server.arrived.set()
        server.release.wait(timeout=60)
        self.send_json(200, {"ok": True})  # the caller may have been killed meanwhile


@pytest.fixture
def slow_api() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowApi)
    server.received = []  # type: ignore[attr-defined]
    server.arrived = threading.Event()  # type: ignore[attr-defined]
    server.release = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()


@pytest.mark.django_db
def test_every_process_registers_the_drill_and_bench_scripts() -> None:
    # Also makes pytest-django set up the test database when this module runs alone.
    from apps.llm.providers.offline import registered_scripts

    assert {DRILL_MARKER, BENCH_MARKER} <= set(registered_scripts())


def _mission(acme: Workspace, slow_api: Any) -> Mission:
    port = slow_api.server_address[1]
    with workspace_schema(acme):
        crew = make_crew(tools=DRILL_TOOLS, http_allowlist=[f"127.0.0.1:{port}"])
        return start(
            crew,
            f"{DRILL_MARKER} {unique('drill')}",
            input={"email": "ops@acme.test", "url": f"http://127.0.0.1:{port}/tickets"},
        )


def _status(acme: Workspace, mission: Mission) -> str:
    with workspace_schema(acme):
        return Mission.objects.values_list("status", flat=True).get(pk=mission.pk)


def _assert_each_model_turn_charged_once(acme: Workspace, mission: Mission) -> None:
    with workspace_schema(acme):
        calls = list(LlmCall.objects.filter(mission_id=mission.pk).values_list("request_id", "status"))
        assert calls and all(status == "completed" for _, status in calls), calls
        request_ids = [request_id for request_id, _ in calls]
        reservations = Counter(
            LedgerEntry.objects.filter(request_id__in=request_ids, kind="reservation").values_list(
                "request_id", flat=True
            )
        )
        settlements = Counter(
            LedgerEntry.objects.filter(request_id__in=request_ids, kind="settlement").values_list(
                "request_id", flat=True
            )
        )
        assert set(reservations.values()) == {1} and set(settlements.values()) == {1}, (reservations, settlements)
        completed = Counter(
            JournalEntry.objects.filter(mission_id=mission.pk, kind="llm.completed").values_list(
                "request_id", flat=True
            )
        )
        assert set(completed.values()) == {1}, completed


@pytest.mark.usefixtures("committed_db")
def test_kill_9_during_a_tool_call_another_worker_resumes_without_running_it_twice(
    acme: Workspace, slow_api: Any, tmp_path: Path
) -> None:
    mission = _mission(acme, slow_api)
    with WorkerProcess("--concurrency", "2", "--sweep-seconds", "30", volume=tmp_path) as first:
        assert slow_api.arrived.wait(timeout=60), first.output  # first is inside http_request now
        with workspace_schema(acme):
            running = ToolCall.objects.get(mission=mission, tool="http_request")
            assert running.status == ToolCallStatus.RUNNING
        with WorkerProcess("--concurrency", "2", "--sweep-seconds", "30", volume=tmp_path) as second:
            second.wait_for_line("listening on")
            first.kill()
            killed_at = time.monotonic()
            slow_api.release.set()

            def resumed() -> bool:
                with workspace_schema(acme):
                    return JournalEntry.objects.filter(
                        mission_id=mission.pk, kind="mission.started", payload__resumed=True
                    ).exists()

            wait_until(resumed, timeout=60, interval=0.05, message=second.output)
            took = time.monotonic() - killed_at
            wait_until(lambda: _status(acme, mission) == MissionStatus.COMPLETED, timeout=120, message=second.output)
            second.terminate()
    # The sweep is 30 s: a takeover well before that came from watching the dead worker's lock.
    assert took < 15, f"resumed {took:.1f}s after the kill"
    assert slow_api.received == [f"{mission.pk}:{running.tool_call_id}"], "the HTTP call was made exactly once"
    with workspace_schema(acme):
        calls = {c.tool: c for c in ToolCall.objects.filter(mission=mission)}
        assert calls["http_request"].status == ToolCallStatus.FAILED
        assert "not run again" in calls["http_request"].error
        assert calls["send_email"].status == ToolCallStatus.SUCCEEDED
        executed = Counter(
            JournalEntry.objects.filter(mission_id=mission.pk, kind="tool.executed").values_list(
                "payload__tool_call_id", flat=True
            )
        )
        assert set(executed.values()) == {1}
        started = list(
            JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.started")
            .order_by("seq")
            .values_list("payload", flat=True)
        )
        assert len(started) == 2 and started[1]["resumed"] is True and started[0]["worker"] != started[1]["worker"]
        steps = Counter(
            JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.step").values_list(
                "payload__step", flat=True
            )
        )
        assert set(steps.values()) == {1}, "no step was journaled twice"
        done = Mission.objects.get(pk=mission.pk)
        assert done.model_calls == 5 and done.attempts == 2
    _assert_each_model_turn_charged_once(acme, mission)


@pytest.mark.usefixtures("committed_db")
def test_kill_9_during_a_model_call_the_turn_is_not_charged_twice(
    acme: Workspace, slow_api: Any, tmp_path: Path
) -> None:
    slow_api.release.set()
    mission = _mission(acme, slow_api)
    slow = {"QD_LLM_OFFLINE_LATENCY_MS": "3000"}

    def turn_started(turn: int, *, in_flight: bool = False) -> bool:
        with workspace_schema(acme):
            calls = LlmCall.objects.filter(mission_id=mission.pk, request_id__endswith=f":turn:{turn}")
            return (calls.exclude(status="completed") if in_flight else calls).exists()

    with WorkerProcess("--concurrency", "1", "--sweep-seconds", "30", env=slow, volume=tmp_path) as first:
        # The second worker starts once the first has the mission, and is ready before the
        # kill: the kill then lands inside turn 2's model call (3 s), not after it.
        wait_until(lambda: turn_started(1), timeout=60, interval=0.05, message=first.output)
        with WorkerProcess("--concurrency", "1", "--sweep-seconds", "30", volume=tmp_path) as second:
            second.wait_for_line("listening on")
            wait_until(lambda: turn_started(2, in_flight=True), timeout=60, interval=0.05, message=first.output)
            first.kill()
            assert turn_started(2, in_flight=True), "the kill was meant to land during turn 2's model call"
            wait_until(lambda: _status(acme, mission) == MissionStatus.COMPLETED, timeout=90, message=second.output)
            second.terminate()
    _assert_each_model_turn_charged_once(acme, mission)
    with workspace_schema(acme):
        calls = list(ToolCall.objects.filter(mission=mission).values_list("tool", "status", "error"))
        assert Counter(status for _, status, _ in calls) == {ToolCallStatus.SUCCEEDED: 4}, calls
        assert len(slow_api.received) == 1


@pytest.mark.usefixtures("committed_db")
def test_two_workers_never_run_the_same_mission(acme: Workspace, tmp_path: Path) -> None:
    with workspace_schema(acme):
        crew = make_crew(tools=["crm_lookup", "write_note"])
        missions = [start(crew, f"{BENCH_MARKER} {unique('pair')}") for _ in range(12)]
    ids = [m.pk for m in missions]
    with (
        WorkerProcess("--concurrency", "3", volume=tmp_path) as one,
        WorkerProcess("--concurrency", "3", volume=tmp_path) as two,
    ):

        def all_done() -> bool:
            with workspace_schema(acme):
                return Mission.objects.filter(pk__in=ids, status=MissionStatus.COMPLETED).count() == len(ids)

        wait_until(all_done, timeout=120, message=one.output + "\n----\n" + two.output)
        assert one.terminate() == 0 and two.terminate() == 0
    with workspace_schema(acme):
        started = list(
            JournalEntry.objects.filter(mission_id__in=ids, kind="mission.started").values_list("mission_id", "payload")
        )
        assert Counter(m for m, _ in started) == dict.fromkeys(ids, 1), "each mission was started exactly once"
        steps = Counter(
            JournalEntry.objects.filter(mission_id__in=ids, kind="mission.step").values_list(
                "mission_id", "payload__step"
            )
        )
        assert set(steps.values()) == {1} and len(steps) == 10 * len(ids), "every step ran once"
        for mission in Mission.objects.filter(pk__in=ids):
            assert list(MissionMessage.objects.filter(mission=mission).values_list("seq", flat=True)) == list(range(11))
    workers = {payload["worker"] for _, payload in started}
    assert len(workers) == 2, "both workers took missions"


@pytest.mark.usefixtures("committed_db")
def test_sigterm_lets_the_step_finish_and_releases_the_mission(acme: Workspace, tmp_path: Path) -> None:
    with workspace_schema(acme):
        crew = make_crew(tools=["crm_lookup", "write_note"])
        mission = start(crew, f"{BENCH_MARKER} {unique('sigterm')}")
    slow = {"QD_LLM_OFFLINE_LATENCY_MS": "1000"}
    with WorkerProcess("--concurrency", "1", env=slow, volume=tmp_path) as worker:
        worker.wait_for_line("step 1:", timeout=60)
        stopped_at = time.monotonic()
        assert worker.terminate(timeout=30) == 0
        assert time.monotonic() - stopped_at < 10
        assert "released (worker stopping)" in worker.output, worker.output
    with workspace_schema(acme):
        released = Mission.objects.get(pk=mission.pk)
        assert released.status == MissionStatus.QUEUED and released.claimed_by == ""
        assert 1 <= released.steps < 10
        assert JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.released").exists()
    with WorkerProcess("--concurrency", "1", "--exit-when-idle", volume=tmp_path) as worker:
        assert worker.process.wait(timeout=60) == 0, worker.output
    with workspace_schema(acme):
        finished = Mission.objects.get(pk=mission.pk)
        assert finished.status == MissionStatus.COMPLETED and finished.steps == 10


@pytest.mark.usefixtures("committed_db")
def test_a_new_mission_wakes_an_idle_worker_at_once(acme: Workspace, tmp_path: Path) -> None:
    # Free slots to spare: missions other tests left queued must not hold up ours.
    with WorkerProcess("--concurrency", "4", "--sweep-seconds", "60", volume=tmp_path) as worker:
        worker.wait_for_line("listening on")
        time.sleep(1.0)  # past the start-up sweep: only a notification can wake it now
        with workspace_schema(acme):
            crew = make_crew(tools=["crm_lookup", "write_note"])
            created = time.monotonic()
            mission = start(crew, f"{BENCH_MARKER} {unique('wake')}")
        wait_until(lambda: _status(acme, mission) != MissionStatus.QUEUED, timeout=20, interval=0.02)
        assert time.monotonic() - created < 3, worker.output
        worker.terminate()


@pytest.mark.usefixtures("committed_db")
def test_the_worker_runs_a_queued_call_once_it_is_approved(
    acme: Workspace, tmp_path: Path, script: Any, operator: Any, reviewer: Any, settings: Any
) -> None:
    """In-process worker (it plays this test's script), woken by the decision's NOTIFY."""
    from apps.approvals import services as approvals
    from apps.core.context import user_actor
    from apps.crews.models import CrmAccount, CrmChange, CrmChangeStatus
    from apps.crews.runtime.worker import Worker

    settings.CREWS_VOLUME_ROOT = tmp_path
    with workspace_schema(acme):
        account = CrmAccount.objects.create(name=unique("Queued Co"), plan="Team")
        marker = script(
            unique("[queued]"),
            [
                _turn("Proposing.", "crm_stage_update", {"account": account.name, "changes": {"plan": "Pro"}}),
                _turn("Done for now."),
            ],
        )
        crew = make_crew(tools=["crm_stage_update"])
        approvals.policy_create(
            fields={
                "name": unique("queue crm"),
                "priority": 1,
                "tool_pattern": "crm_stage_update",
                "crew_ids": [str(crew.pk)],
                "action": "require_async",
                "approver_roles": ["reviewer"],
                "timeout_seconds": 3600,
            }
        )
        mission = start(crew, f"{marker} upgrade", created_by_user=operator)
    lines: list[str] = []
    worker = Worker(concurrency=2, sweep_seconds=60, out=lines.append)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: _status(acme, mission) == MissionStatus.COMPLETED, timeout=60, message="\n".join(lines))
        with workspace_schema(acme):
            call = ToolCall.objects.get(mission=mission)
            assert call.status == ToolCallStatus.QUEUED
            decider = approvals.Decider(role="reviewer", actor=user_actor(reviewer), user_id=reviewer.pk)
            approvals.request_decide(request_id=call.approval_request_id, decider=decider, decision="approve")

        def ran() -> bool:
            with workspace_schema(acme):
                return ToolCall.objects.filter(pk=call.pk, status=ToolCallStatus.SUCCEEDED).exists()

        wait_until(ran, timeout=20, message="\n".join(lines))
        with workspace_schema(acme):
            assert CrmChange.objects.get(mission_id=mission.pk).status == CrmChangeStatus.APPLIED
            assert JournalEntry.objects.get(mission_id=mission.pk, kind="tool.executed").payload["late"] is True
    finally:
        worker.request_stop()
        thread.join(30)


def _turn(text: str, tool: str | None = None, arguments: dict[str, Any] | None = None) -> Any:
    from apps.llm.providers.offline import ScriptToolCall, ScriptTurn

    return ScriptTurn(text=text, tool_calls=[ScriptToolCall(tool, arguments or {})] if tool else [])
