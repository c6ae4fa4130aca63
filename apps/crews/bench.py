"""The runtime benchmark (``manage.py bench_runtime``, ``make bench-runtime``).

Runs in a dedicated workspace (``runtime-bench``, provisioned on first use) with real worker
processes (``manage.py run_crews``) and the offline provider through the real gateway:

1. Throughput: two workers start and listen; 50 missions of 10 steps each (five model turns,
   five tool calls; the ``[bench-runtime]`` offline script) are queued at once, and woken
   workers run them concurrently. ``missions_per_min`` counts from queueing to the last one
   completed.
2. Governance overhead per step, from the journal (for the 50 concurrent missions, and for
   three more run one at a time: ``uncontended_overhead_ms_per_step_p50``): a step's wall time (``mission.step``
   ``duration_ms``: the gateway with its routing, budget reservation/settlement and ledger,
   the approvals gate, the vault's scrubbing, the step's records and journal entries) minus
   the tool's own run time (``tool.executed`` ``duration_ms``) and the provider's latency
   (the offline provider answers in well under a millisecond; its configured latency is 0,
   so nothing is subtracted and its compute counts as overhead, conservatively).
3. Resume after a kill: another batch; once the first worker holds running missions it is
   killed with SIGKILL; ``resume_after_kill_s`` is the time until the first of its missions
   runs again on the other worker (the survivor waits on the dead worker's advisory lock,
   so it learns of the death from Postgres at once), ``all_resumed_after_kill_s`` until the
   last one does (they queue for the survivor's free slots). Then every mission must
   complete with no step journaled twice and no model turn charged twice.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from apps.audit.models import JournalEntry
from apps.budgets.models import LedgerEntry
from apps.core.context import SYSTEM, acting_as
from apps.llm.models import LlmCall
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision

from .models import Crew, CrmAccount, Mission, MissionStatus
from .offline_scripts import BENCH_MARKER
from .services import agent_create, crew_create, mission_create

BENCH_SLUG = "runtime-bench"
STEPS_PER_MISSION = 10


def bench_workspace(log: Callable[[str], None]) -> Workspace:
    workspace = Workspace.objects.filter(slug=BENCH_SLUG).first()
    if workspace is None:
        log(f"provisioning workspace {BENCH_SLUG}")
        workspace = workspace_provision(name="Runtime benchmark", slug=BENCH_SLUG).workspace
    return workspace


def bench_crew(workspace: Workspace) -> Crew:
    with workspace_schema(workspace), acting_as(SYSTEM):
        CrmAccount.objects.get_or_create(name="Acme Corp", defaults={"domain": "acme.example", "plan": "Enterprise"})
        crew = crew_create(
            name=f"Bench crew {uuid.uuid4().hex[:8]}",
            default_model="offline-small",
            autonomy="full",
            max_steps=STEPS_PER_MISSION + 2,
        )
        agent_create(crew=crew, name="Worker", role="benchmark agent", tools=["crm_lookup", "write_note"])
        return crew


@dataclass
class Workers:
    env: dict[str, str]
    concurrency: int
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    lines: list[list[str]] = field(default_factory=list)

    def start(self, count: int) -> None:
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, "manage.py", "run_crews", "--concurrency", str(self.concurrency)],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            output: list[str] = []
            threading.Thread(target=self._read, args=(process, output), daemon=True).start()
            self.processes.append(process)
            self.lines.append(output)
        for output in self.lines[-count:]:
            self._wait_for(output, "listening on")

    @staticmethod
    def _read(process: subprocess.Popen[str], output: list[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))

    @staticmethod
    def _wait_for(output: list[str], fragment: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(output):
                if fragment in line:
                    return line
            time.sleep(0.05)
        raise RuntimeError("a worker did not start:\n" + "\n".join(output))

    def worker_id(self, index: int) -> str:
        line = self._wait_for(self.lines[index], "listening on")
        return line.split("]", 1)[0].lstrip("[")

    def kill(self, index: int) -> None:
        os.kill(self.processes[index].pid, signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _queue(workspace: Workspace, crew: Crew, count: int, label: str) -> list[uuid.UUID]:
    with workspace_schema(workspace), acting_as(SYSTEM):
        return [mission_create(crew=crew, goal=f"{BENCH_MARKER} {label} {n}").pk for n in range(count)]


def _wait_done(workspace: Workspace, ids: list[uuid.UUID], timeout: float, log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        with workspace_schema(workspace):
            counts = Counter(Mission.objects.filter(pk__in=ids).values_list("status", flat=True))
        done = counts.get(MissionStatus.COMPLETED, 0)
        finished = done + counts.get(MissionStatus.FAILED, 0) + counts.get(MissionStatus.CANCELLED, 0)
        if done != last:
            log(f"  {done}/{len(ids)} completed")
            last = done
        if finished == len(ids):
            if done != len(ids):
                raise RuntimeError(f"missions did not all complete: {dict(counts)}")
            return
        time.sleep(0.05)
    raise RuntimeError("the missions did not finish in time")


def _overheads(workspace: Workspace, ids: list[uuid.UUID]) -> tuple[list[float], list[float]]:
    with workspace_schema(workspace):
        tool_ms = {
            (str(e.mission_id), e.payload["tool_call_id"]): e.payload.get("duration_ms", 0)
            for e in JournalEntry.objects.filter(mission_id__in=ids, kind="tool.executed").only("mission_id", "payload")
        }
        overheads, walls = [], []
        for entry in JournalEntry.objects.filter(mission_id__in=ids, kind="mission.step").only("mission_id", "payload"):
            wall = float(entry.payload.get("duration_ms", 0))
            own = tool_ms.get((str(entry.mission_id), entry.payload.get("tool_call_id", "")), 0)
            provider = float(getattr(settings, "LLM_OFFLINE_LATENCY_MS", 0)) if entry.payload["node"] == "agent" else 0
            walls.append(wall)
            overheads.append(max(0.0, wall - own - provider))
    return overheads, walls


def _integrity(workspace: Workspace, ids: list[uuid.UUID]) -> dict[str, int]:
    with workspace_schema(workspace):
        steps = Counter(
            JournalEntry.objects.filter(mission_id__in=ids, kind="mission.step").values_list(
                "mission_id", "payload__step"
            )
        )
        executed = Counter(
            JournalEntry.objects.filter(mission_id__in=ids, kind="tool.executed").values_list(
                "mission_id", "payload__tool_call_id"
            )
        )
        request_ids = list(LlmCall.objects.filter(mission_id__in=ids).values_list("request_id", flat=True))
        reservations = Counter(
            LedgerEntry.objects.filter(kind="reservation", request_id__in=request_ids).values_list(
                "request_id", flat=True
            )
        )
    return {
        "duplicate_steps": sum(n - 1 for n in steps.values() if n > 1),
        "tools_run_twice": sum(n - 1 for n in executed.values() if n > 1),
        "turns_charged_twice": sum(n - 1 for n in reservations.values() if n > 1),
        "steps_journaled": len(steps),
    }


def run(*, missions: int, workers: int, concurrency: int, log: Callable[[str], None]) -> dict[str, Any]:
    workspace = bench_workspace(log)
    crew = bench_crew(workspace)
    params = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE),
        "DATABASE_URL": (
            f"postgres://{params['USER']}:{params['PASSWORD']}@{params['HOST'] or '127.0.0.1'}:"
            f"{params['PORT'] or 5432}/{params['NAME']}"
        ),
        "PYTHONUNBUFFERED": "1",
    }

    # 1. Throughput: the workers are up and listening; the missions are queued at once.
    pool = Workers(env=env, concurrency=concurrency)
    log(f"starting {workers} workers ({concurrency} mission slots each)")
    pool.start(workers)
    try:
        log(f"queueing {missions} missions of {STEPS_PER_MISSION} steps")
        started = time.monotonic()
        ids = _queue(workspace, crew, missions, "throughput")
        _wait_done(workspace, ids, timeout=600, log=log)
        elapsed = time.monotonic() - started
        # The same work one mission at a time: the overhead of a step nobody competes with.
        log("three missions one at a time, for the uncontended step overhead")
        alone: list[uuid.UUID] = []
        for n in range(3):
            single = _queue(workspace, crew, 1, f"alone {n}")
            _wait_done(workspace, single, timeout=120, log=lambda line: None)
            alone += single
    finally:
        pool.stop()
    overheads, walls = _overheads(workspace, ids)
    alone_overheads, _ = _overheads(workspace, alone)
    integrity = _integrity(workspace, ids)
    log(
        f"throughput: {missions} missions in {elapsed:.2f}s; step overhead p50 "
        f"{statistics.median(overheads):.1f} ms over {len(overheads)} steps"
    )

    # 3. Resume after kill -9.
    kill_pool = Workers(env=env, concurrency=concurrency)
    log("starting two fresh workers for the kill drill")
    kill_pool.start(2)
    victim = kill_pool.worker_id(0)
    try:
        batch = _queue(workspace, crew, max(missions // 2, 4 * concurrency), "kill")
        deadline = time.monotonic() + 60
        held: list[uuid.UUID] = []
        while time.monotonic() < deadline and not held:
            with workspace_schema(workspace):
                held = list(
                    Mission.objects.filter(
                        pk__in=batch, claimed_by=victim, status=MissionStatus.RUNNING, steps__gte=2
                    ).values_list("pk", flat=True)
                )
            time.sleep(0.01)
        if not held:
            raise RuntimeError("the first worker never held a running mission")
        kill_pool.kill(0)
        killed = time.monotonic()
        log(f"killed {victim} (SIGKILL) holding {len(held)} running mission(s)")
        resumed: dict[uuid.UUID, float] = {}
        while len(resumed) < len(held) and time.monotonic() - killed < 120:
            with workspace_schema(workspace):
                taken = Mission.objects.filter(pk__in=held).exclude(claimed_by=victim).exclude(claimed_by="")
                finished = Mission.objects.filter(pk__in=held, status=MissionStatus.COMPLETED)
                now = time.monotonic()
                for mission_id in [*taken.values_list("pk", flat=True), *finished.values_list("pk", flat=True)]:
                    resumed.setdefault(mission_id, now - killed)
            time.sleep(0.005)
        _wait_done(workspace, batch, timeout=600, log=log)
    finally:
        kill_pool.stop()
    kill_integrity = _integrity(workspace, batch)
    first_resume = min(resumed.values()) if resumed else None
    all_resumed = max(resumed.values()) if len(resumed) == len(held) else None
    log(f"resume after kill: first {first_resume}s, all {all_resumed}s")

    return {
        "missions": missions,
        "steps_per_mission": STEPS_PER_MISSION,
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "elapsed_s": round(elapsed, 2),
        "missions_per_min": round(missions / elapsed * 60, 1),
        "steps_per_s": round(missions * STEPS_PER_MISSION / elapsed, 1),
        "governance_overhead_ms_per_step_p50": round(statistics.median(overheads), 1),
        "governance_overhead_ms_per_step_p95": round(_percentile(overheads, 0.95), 1),
        "step_ms_p50": round(statistics.median(walls), 1),
        "uncontended_overhead_ms_per_step_p50": round(statistics.median(alone_overheads), 1),
        "resume_after_kill_s": round(first_resume, 3) if first_resume is not None else None,
        "all_resumed_after_kill_s": round(all_resumed, 3) if all_resumed is not None else None,
        "killed_worker_missions": len(held),
        "kill_batch_missions": len(batch),
        "duplicate_steps": integrity["duplicate_steps"] + kill_integrity["duplicate_steps"],
        "tools_run_twice": integrity["tools_run_twice"] + kill_integrity["tools_run_twice"],
        "turns_charged_twice": integrity["turns_charged_twice"] + kill_integrity["turns_charged_twice"],
    }
