"""The approvals benchmark (``manage.py bench_approvals``), against real processes.

- push: a real daphne serves the ASGI app; reviewer WebSocket clients connect to
  ``/ws/w/<slug>/inbox/`` over TCP; this process calls ``gate()`` for N tool calls one after
  another. Latency = from just before ``gate()`` is called to the moment a client has the
  ``request.created`` message (so it includes the gate's own work, the commit, Redis and
  daphne). Every (request, client) pair is a sample.
- resume: the crews runtime's worker (``manage.py run_crews``, a subprocess) runs missions
  created through the REST API (approvals does not import crews); a policy makes their first
  ``write_note`` wait. Once every mission waits, each request is approved in turn, and
  latency = the request's ``decided_at`` to the mission's ``mission.resumed`` journal entry
  (the worker has taken the mission up again: its next step starts).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from apps.audit.models import JournalEntry
from apps.core.context import SYSTEM, acting_as, user_actor
from apps.core.permissions import Role
from apps.tenants.access import workspace_schema
from apps.tenants.models import Membership, Workspace
from apps.tenants.services import api_key_create, workspace_provision

from . import services
from .gate import gate
from .models import ApprovalRequest, RequestStatus

BENCH_SLUG = "bench-approvals"
BENCH_REVIEWER = "bench-reviewer"
# The crews app's benchmark script (apps.crews.offline_scripts): crm_lookup, then write_note
# bench-1.txt ... bench-4.txt, then an answer. Only bench-1.txt is made to wait.
RUNTIME_SCRIPT_MARKER = "[bench-runtime]"

Say = Callable[[str], None]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(name: str, values: list[float]) -> dict[str, Any]:
    if not values:
        return {f"{name}_samples": 0, f"{name}_p50_ms": None, f"{name}_p95_ms": None, f"{name}_max_ms": None}
    return {
        f"{name}_samples": len(values),
        f"{name}_p50_ms": round(percentile(values, 50), 2),
        f"{name}_p95_ms": round(percentile(values, 95), 2),
        f"{name}_max_ms": round(max(values), 2),
        f"{name}_mean_ms": round(statistics.fmean(values), 2),
    }


# --- set-up ---------------------------------------------------------------------------------


def bench_workspace(say: Say) -> tuple[Workspace, Any]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    user_model = get_user_model()
    reviewer = user_model.objects.filter(username=BENCH_REVIEWER).first()
    if reviewer is None:
        # No email address: the benchmark measures the push, not the mail server.
        reviewer = user_model.objects.create_user(BENCH_REVIEWER, "", None)
    elif reviewer.email:
        user_model.objects.filter(pk=reviewer.pk).update(email="")
    workspace = Workspace.objects.filter(slug=BENCH_SLUG).first()
    if workspace is None:
        say(f"provisioning workspace {BENCH_SLUG}")
        workspace = workspace_provision(
            name="Approvals benchmark", slug=BENCH_SLUG, email_domains=["bench.invalid"]
        ).workspace
    Membership.objects.get_or_create(user=reviewer, workspace=workspace, defaults={"role": Role.REVIEWER})
    return workspace, reviewer


def session_cookie(user: Any) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def database_url() -> str:
    """The database this process really uses (under pytest: the test database)."""
    db = connection.settings_dict
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    return f"postgres://{user}:{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def child_env(settings_module: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env["DJANGO_SETTINGS_MODULE"] = settings_module or str(settings.SETTINGS_MODULE)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(
    argv: list[str],
    *,
    name: str,
    ready: Callable[[], bool],
    timeout: float = 60,
    settings_module: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    log = open(os.devnull, "wb")  # noqa: SIM115  (closed below)
    env = child_env(settings_module)
    proc = subprocess.Popen(argv, env=env, cwd=str(settings.BASE_DIR), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready in {timeout:.0f} s")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return check


@contextmanager
def daphne(port: int, *, settings_module: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A real daphne serving the ASGI app on 127.0.0.1:``port``, on this process's database."""
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    with process(argv, name="daphne", ready=port_open(port), settings_module=settings_module) as proc:
        yield proc


# --- push -------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """One reviewer's open inbox: a WebSocket client in a thread, noting when each request
    arrives (keyed by tool call id)."""

    url: str
    cookie: str
    origin: str
    arrivals: dict[str, float] = field(default_factory=dict)
    connected: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: str = ""

    def run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url, additional_headers={"Cookie": self.cookie, "Origin": self.origin}) as ws:
                self.connected.set()
                while not self.stop.is_set():
                    try:
                        raw = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    now = time.perf_counter()
                    message = json.loads(raw)
                    if message.get("type") == "request.created":
                        self.arrivals.setdefault(message["request"]["tool_call_id"], now)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.connected.set()


def bench_push(
    *, workspace: Workspace, reviewer: Any, port: int, requests: int, clients: int, say: Say
) -> dict[str, Any]:
    cookie = session_cookie(reviewer)
    receivers = [
        Receiver(
            url=f"ws://127.0.0.1:{port}/ws/w/{workspace.slug}/inbox/", cookie=cookie, origin=f"http://127.0.0.1:{port}"
        )
        for _ in range(clients)
    ]
    threads = [threading.Thread(target=r.run, daemon=True) for r in receivers]
    for thread in threads:
        thread.start()
    for receiver in receivers:
        receiver.connected.wait(15)
        if receiver.error:
            raise RuntimeError(f"reviewer client could not connect: {receiver.error}")
    crew = uuid.uuid4()
    started: dict[str, float] = {}
    missions: list[uuid.UUID] = []
    warmup = 5
    with workspace_schema(workspace), acting_as(SYSTEM):
        for index in range(warmup + requests):
            tool_call_id = f"bench-push-{uuid.uuid4().hex}"
            mission = uuid.uuid4()
            missions.append(mission)
            t0 = time.perf_counter()
            gate(
                tool_name="send_email",
                arguments={"to": [f"customer{index}@example.com"], "subject": "Benchmark", "body": "Hello"},
                tool_call_id=tool_call_id,
                has_side_effects=True,
                estimated_cost_microusd=0,
                crew_id=crew,
                agent_id=uuid.uuid4(),
                mission_id=mission,
                autonomy_level="strict",
                reasoning="benchmark",
                crew_name="Benchmark",
                agent_name="bench",
                mission_goal="push benchmark",
            )
            if index >= warmup:
                started[tool_call_id] = t0
            if (index + 1) % 50 == 0:
                say(f"push: {index + 1 - warmup}/{requests} requests created")
            time.sleep(0.005)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(len(set(started) - set(r.arrivals)) for r in receivers):
            time.sleep(0.05)
        for receiver in receivers:
            receiver.stop.set()
        for thread in threads:
            thread.join(5)
        for mission in missions:
            services.requests_cancel_for_mission(mission_id=mission, reason="benchmark done")
    samples = [
        (receiver.arrivals[key] - t0) * 1000
        for receiver in receivers
        for key, t0 in started.items()
        if key in receiver.arrivals
    ]
    lost = len(started) * len(receivers) - len(samples)
    return {"requests": requests, "clients": clients, "push_lost": lost, **summary("push", samples)}


# --- resume -------------------------------------------------------------------------------------


def run_crews_available() -> bool:
    from django.core.management import get_commands

    return "run_crews" in get_commands()


def bench_resume(
    *, workspace: Workspace, reviewer: Any, port: int, missions: int, concurrency: int, say: Say
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}/api/v1"
    _, token = api_key_create(workspace=workspace, name=f"bench {uuid.uuid4().hex[:6]}", role=Role.ADMIN)
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    tag = uuid.uuid4().hex[:8]
    crew = _post(
        http,
        "/crews/",
        {"name": f"Approvals bench {tag}", "autonomy": "full", "default_model": "offline-small", "max_steps": 20},
    )
    _post(
        http, "/agents/", {"crew": crew["id"], "name": "Bench", "role": "bench", "tools": ["crm_lookup", "write_note"]}
    )
    with workspace_schema(workspace), acting_as(SYSTEM):
        policy = services.policy_create(
            fields={
                "name": f"bench wait {tag}",
                "priority": 0,
                "tool_pattern": "write_note",
                "conditions": [{"path": "filename", "op": "eq", "value": "bench-1.txt"}],
                "crew_ids": [crew["id"]],
                "action": "require_sync",
                "approver_roles": ["reviewer"],
                "timeout_seconds": 3600,
            }
        )
    mission_ids = [
        _post(http, "/missions/", {"crew": crew["id"], "goal": f"{RUNTIME_SCRIPT_MARKER} approvals bench {tag} #{n}"})[
            "id"
        ]
        for n in range(missions)
    ]
    say(f"resume: {missions} missions created; starting the worker")
    worker = [sys.executable, "manage.py", "run_crews", "--concurrency", str(concurrency)]
    samples: list[float] = []
    with process(worker, name="run_crews", ready=lambda: True), workspace_schema(workspace):
        requests = _wait_for_requests(mission_ids, say=say)
        decider = services.Decider(role=Role.REVIEWER, actor=user_actor(reviewer), user_id=reviewer.pk)
        for index, request in enumerate(requests):
            decided = services.request_decide(request_id=request.pk, decider=decider, decision="approve")
            resumed = _wait_for_resume(request.mission_id)
            if resumed is not None and decided.decided_at is not None:
                samples.append((resumed - decided.decided_at).total_seconds() * 1000)
            if (index + 1) % 50 == 0:
                say(f"resume: {index + 1}/{len(requests)} decided")
        with acting_as(SYSTEM):
            services.policy_delete(policy=policy)
    http.close()
    return {"missions": missions, "resume_lost": missions - len(samples), **summary("resume", samples)}


def _post(http: httpx.Client, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=payload)
    if response.status_code >= 300:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
    return response.json()  # type: ignore[no-any-return]


def _wait_for_requests(mission_ids: list[str], *, say: Say, timeout: float = 600) -> list[ApprovalRequest]:
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        requests = list(
            ApprovalRequest.objects.filter(mission_id__in=mission_ids, status=RequestStatus.PENDING).order_by(
                "created_at"
            )
        )
        if len(requests) >= len(mission_ids):
            return requests
        if len(requests) != last:
            say(f"resume: {len(requests)}/{len(mission_ids)} missions wait for approval")
            last = len(requests)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(requests)} of {len(mission_ids)} missions reached their approval")
        time.sleep(0.25)


def _wait_for_resume(mission_id: uuid.UUID, timeout: float = 30) -> Any:
    """When the mission's ``mission.resumed`` entry was written. The latency comes from the two
    timestamps, so this only needs to notice eventually; polling gently keeps the benchmark
    from loading the database it measures."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = JournalEntry.objects.filter(mission_id=mission_id, kind="mission.resumed").order_by("seq").first()
        if entry is not None:
            return entry.created_at
        time.sleep(0.05)
    return None
