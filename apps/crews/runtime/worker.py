"""The crew worker: claims runnable missions in every workspace and runs them on a thread pool.

Coordination is Postgres only, never memory:

- Claiming: ``SELECT ... FOR UPDATE SKIP LOCKED`` in each workspace schema, then the claim
  (``claimed_by``, a lease) is committed; two workers never take the same row, and each graph
  step re-checks the claim (``RunContext.mission``) so a worker that lost it stops.
- Liveness: a worker's LISTEN connection carries its id as ``application_name`` and holds a
  session advisory lock on it. A claim whose worker no longer has a session (it was killed)
  is free at once; peers wait on each other's advisory lock in a watcher thread, so a killed
  worker's missions are taken over as soon as Postgres notices its connection closed, not at
  the next sweep. The lease is the last resort for a worker that hangs while connected.
- Waking: ``LISTEN quarterdeck_wake``. Mission creation, resume, retry and approval decisions
  NOTIFY with ``{"schema", "mission_id", "reason"}``; a sweep every ``CREWS_SWEEP_SECONDS``
  catches anything a notification missed. There is no 1-second polling.
- SIGTERM: stop claiming, let each running mission finish its current step, release it
  (status queued, claim cleared) and NOTIFY so another worker continues at once.
- Each sweep also runs the periodic governance work: approval timeouts (sleeping until the
  next deadline when it is nearer than the next sweep), the journal's housekeeping (signed
  checkpoints, retention), stale budget reservations, and ``CREWS_WORKER_PERIODIC``.
"""

from __future__ import annotations

import importlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from apps.audit.housekeeping import JournalHousekeeping
from apps.memory.services import embedder_preload
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from ..models import Mission, MissionStatus, ToolCall, ToolCallStatus
from . import checkpoints, governance
from .context import LostClaim
from .executor import settle_queued_call
from .runner import run_mission

logger = logging.getLogger(__name__)

WORKER_PREFIX = "qd-worker-"
WATCHER_PREFIX = "qd-watch-"

# Runnable: queued, or running under a claim whose worker is gone (no session) or whose
# lease ran out. Oldest first. SKIP LOCKED: a row another worker is claiming right now is
# skipped, not waited for.
CLAIM_SQL = """
SELECT id FROM crews_mission
WHERE status = ANY(%s)
  AND (claimed_by = '' OR lease_expires_at < now() OR NOT (claimed_by = ANY(%s)))
ORDER BY created_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
ALIVE_SQL = "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name LIKE %s"


BUDGET_SWEEP_SECONDS = 300.0


def settle_stale_reservations() -> int:
    """Settle budget reservations whose process died long ago, in every workspace (crosses
    workspaces on purpose, one schema at a time)."""
    from apps.budgets.services import reservations_settle_stale

    settled = 0
    for workspace in Workspace.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name()):
        with workspace_schema(workspace):
            settled += reservations_settle_stale()
    return settled


def new_worker_id() -> str:
    return f"{WORKER_PREFIX}{uuid.uuid4().hex[:12]}"


def alive_workers() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(ALIVE_SQL, [WORKER_PREFIX + "%"])
        return [row[0] for row in cursor.fetchall()]


def claim_missions(*, workspace: Workspace, worker_id: str, limit: int, alive: list[str]) -> list[uuid.UUID]:
    """Claim up to ``limit`` runnable missions of ``workspace`` for ``worker_id``."""
    if limit <= 0:
        return []
    with workspace_schema(workspace), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, [[MissionStatus.QUEUED, MissionStatus.RUNNING], alive, limit])
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            now = timezone.now()
            Mission.objects.filter(pk__in=ids).update(
                status=MissionStatus.RUNNING,
                claimed_by=worker_id,
                claimed_at=now,
                lease_expires_at=now + timedelta(seconds=settings.CREWS_LEASE_SECONDS),
                attempts=F("attempts") + 1,
                updated_at=now,
            )
    return ids


def resolve_waits(*, workspace: Workspace) -> int:
    """Queue the waiting missions whose approval has been decided, with the decision."""
    resumed = 0
    with workspace_schema(workspace):
        waiting = list(
            Mission.objects.filter(status=MissionStatus.WAITING_APPROVAL)
            .exclude(waiting_on="")
            .values_list("pk", "waiting_on")
        )
        for mission_id, request_id in waiting:
            decision = governance.approval_decision(request_id)
            if decision is None:
                continue
            with transaction.atomic():
                updated = Mission.objects.filter(
                    pk=mission_id, status=MissionStatus.WAITING_APPROVAL, waiting_on=request_id
                ).update(status=MissionStatus.QUEUED, resume_payload=decision.as_dict(), updated_at=timezone.now())
                resumed += updated
    return resumed


@dataclass
class _Active:
    workspace: Workspace
    mission_id: uuid.UUID
    future: Future[Any]


@dataclass
class Worker:
    concurrency: int = 4
    sweep_seconds: float = 5.0
    out: Callable[[str], None] = print
    worker_id: str = field(default_factory=new_worker_id)
    exit_when_idle: bool = False

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="mission")
        self._side_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="settle")
        self._active: dict[uuid.UUID, _Active] = {}
        self._settling: set[uuid.UUID] = set()
        self._watched: set[str] = set()
        self._listening = threading.Event()
        self._print_lock = threading.Lock()
        self._next_sweep = 0.0
        self._next_budget_sweep = 0.0
        self._housekeeping = JournalHousekeeping()
        self.claimed = 0

    # --- output ------------------------------------------------------------------------
    def say(self, line: str) -> None:
        with self._print_lock:
            self.out(f"[{self.worker_id}] {line}")

    def _mission_out(self, workspace: Workspace, mission_id: uuid.UUID) -> Callable[[str], None]:
        prefix = f"{workspace.slug}/{str(mission_id)[:8]}"
        return lambda line: self.say(f"{prefix} {line}")

    # --- lifecycle ---------------------------------------------------------------------
    def request_stop(self) -> None:
        """Safe from a signal handler (SimpleQueue.put is reentrant)."""
        self.stop.set()
        self.events.put(("stop", None))

    def run(self) -> int:
        embedder_preload()  # agents' memory tools then do not wait for the model on first use
        listener = threading.Thread(target=self._listen, name="listen", daemon=True)
        listener.start()
        # Our session must exist before we claim: peers judge our claims by it.
        if not self._listening.wait(timeout=30):
            self.say("could not LISTEN; exiting")
            return 1
        self.say(f"listening on {settings.CREWS_WAKE_CHANNEL}; {self.concurrency} mission slots")
        self._next_sweep = 0.0
        exit_code = 0
        while not self.stop.is_set():
            try:
                if time.monotonic() >= self._next_sweep:
                    self._sweep()
                if self.exit_when_idle and not self._active and not self._settling and not self._pending_work():
                    break
                try:
                    kind, data = self.events.get(timeout=max(0.0, self._next_sweep - time.monotonic()))
                except queue.Empty:
                    continue
                if kind == "stop":
                    break
                if kind == "listener_failed":
                    self.say(f"lost the LISTEN connection ({data}); stopping")
                    exit_code = 1
                    break
                self._handle(kind, data)
            except Exception:
                # The loop outlives a failed claim or sweep (a deadlock, a dropped connection):
                # missions in flight keep running, and the next sweep tries again.
                logger.exception("worker loop iteration failed")
                close_old_connections()
                time.sleep(0.5)
        self._shutdown()
        return exit_code

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "done":
            self._active.pop(data, None)
            self._pass(self._workspaces(), resume=False)  # a slot is free: only claim
        elif kind == "settled":
            self._settling.discard(data)
        elif kind == "notify":
            self._pass(self._workspaces_for(data))
        elif kind == "peer_gone":
            self._watched.discard(data)
            self.say(f"worker {data} is gone; taking over its missions")
            self._pass(self._workspaces())

    def _shutdown(self) -> None:
        self.stop.set()
        if self._active:
            self.say(f"stopping: letting {len(self._active)} mission(s) finish their current step")
        for active in list(self._active.values()):
            try:
                active.future.result()
            except Exception:
                logger.exception("mission %s ended with an error", active.mission_id)
        self._pool.shutdown(wait=True)
        self._side_pool.shutdown(wait=True)
        self.say(f"stopped ({self.claimed} claim(s))")

    # --- Postgres: LISTEN and peer liveness -----------------------------------------------
    def _listen(self) -> None:
        try:
            with psycopg.Connection.connect(
                checkpoints.conninfo(schema=get_public_schema_name(), application_name=self.worker_id),
                autocommit=True,
            ) as conn:
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [self.worker_id])
                conn.execute(f"LISTEN {settings.CREWS_WAKE_CHANNEL}")
                self._listening.set()
                for note in conn.notifies():
                    self.events.put(("notify", note.payload))
        except Exception as exc:
            logger.exception("listener failed")
            self.events.put(("listener_failed", f"{type(exc).__name__}: {exc}"))

    def _watch(self, peer: str) -> None:
        try:
            with psycopg.Connection.connect(
                checkpoints.conninfo(schema=get_public_schema_name(), application_name=WATCHER_PREFIX + peer[-12:]),
                autocommit=True,
            ) as conn:
                # Blocks for as long as the peer's session holds its lock: returns when it dies.
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [peer])
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [peer])
        except Exception:
            logger.exception("watching %s failed", peer)
        self.events.put(("peer_gone", peer))

    def _watch_peers(self, alive: list[str]) -> None:
        for peer in alive:
            if peer != self.worker_id and peer not in self._watched:
                self._watched.add(peer)
                threading.Thread(target=self._watch, args=(peer,), name=f"watch-{peer[-6:]}", daemon=True).start()

    # --- work ----------------------------------------------------------------------------
    def _workspaces(self) -> list[Workspace]:
        # Crosses workspaces on purpose: the worker serves every active workspace, one schema
        # at a time (each claim runs inside that workspace's schema).
        return list(Workspace.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name()))

    def _workspaces_for(self, payload: str) -> list[Workspace]:
        try:
            schema = json.loads(payload).get("schema")
        except (ValueError, AttributeError):
            schema = None
        if schema:
            found = list(Workspace.objects.filter(is_active=True, schema_name=schema))
            if found:
                return found
        return self._workspaces()

    def _pending_work(self) -> bool:
        for workspace in self._workspaces():
            with workspace_schema(workspace):
                if Mission.objects.filter(status=MissionStatus.QUEUED).exists():
                    return True
        return False

    def _sweep(self) -> None:
        self._next_sweep = time.monotonic() + self.sweep_seconds
        close_old_connections()
        self._heartbeat()
        self._run_periodic()
        self._pass(self._workspaces())

    def _heartbeat(self) -> None:
        lease = timezone.now() + timedelta(seconds=settings.CREWS_LEASE_SECONDS)
        by_workspace: dict[int, tuple[Workspace, list[uuid.UUID]]] = {}
        for active in self._active.values():
            by_workspace.setdefault(active.workspace.pk, (active.workspace, []))[1].append(active.mission_id)
        for workspace, ids in by_workspace.values():
            with workspace_schema(workspace), transaction.atomic():
                # SKIP LOCKED: a row locked right now belongs to a step in progress, which renews
                # the lease itself; waiting for it while holding other rows could deadlock.
                free = Mission.objects.select_for_update(no_key=True, skip_locked=True).filter(
                    pk__in=ids, claimed_by=self.worker_id
                )
                Mission.objects.filter(pk__in=list(free.values_list("pk", flat=True))).update(lease_expires_at=lease)

    def _run_periodic(self) -> None:
        try:
            due_in = governance.sweep_timeouts()
        except Exception:
            logger.exception("sweeping approval timeouts failed")
            due_in = None
        if due_in is not None:
            # Wake for the next approval deadline rather than up to a sweep later.
            self._next_sweep = min(self._next_sweep, time.monotonic() + max(0.2, due_in))
        try:
            self._housekeeping.tick()
        except Exception:
            logger.exception("journal housekeeping failed")
        if time.monotonic() >= self._next_budget_sweep:
            self._next_budget_sweep = time.monotonic() + BUDGET_SWEEP_SECONDS
            try:
                settle_stale_reservations()
            except Exception:
                logger.exception("settling stale budget reservations failed")
        for path in settings.CREWS_WORKER_PERIODIC:
            try:
                module_name, _, attr = path.rpartition(".")
                getattr(importlib.import_module(module_name), attr)()
            except Exception:
                logger.exception("periodic task %s failed", path)

    def _pass(self, workspaces: list[Workspace], *, resume: bool = True) -> None:
        """Resume decided waits and settle decided queued calls (``resume``), claim what fits."""
        if self.stop.is_set():
            return
        alive = alive_workers()
        self._watch_peers(alive)
        for workspace in workspaces:
            try:
                if resume:
                    resolve_waits(workspace=workspace)
                    self._settle_queued(workspace)
            except Exception:
                # A decision that cannot be read now must not keep this workspace's missions
                # from being claimed; the next pass tries again.
                logger.exception("resuming decided approvals in %s failed", workspace.schema_name)
            try:
                free = self.concurrency - len(self._active)
                ids = claim_missions(workspace=workspace, worker_id=self.worker_id, limit=free, alive=alive)
            except Exception:
                logger.exception("claiming in %s failed", workspace.schema_name)
                continue
            for mission_id in ids:
                self.claimed += 1
                future = self._pool.submit(self._run_one, workspace, mission_id)
                self._active[mission_id] = _Active(workspace, mission_id, future)

    def _run_one(self, workspace: Workspace, mission_id: uuid.UUID) -> None:
        out = self._mission_out(workspace, mission_id)
        try:
            run_mission(
                workspace=workspace, mission_id=mission_id, worker_id=self.worker_id, stop=self.stop, progress=out
            )
        except LostClaim:
            out("claim lost; stopped")
        except Exception:
            logger.exception("running mission %s failed", mission_id)
        finally:
            connections.close_all()
            self.events.put(("done", mission_id))

    def _settle_queued(self, workspace: Workspace) -> None:
        with workspace_schema(workspace):
            queued = list(ToolCall.objects.filter(status=ToolCallStatus.QUEUED).exclude(approval_request_id=""))
            decided = [
                record
                for record in queued
                if record.pk not in self._settling and governance.approval_decision(record.approval_request_id)
            ]
        for record in decided:
            self._settling.add(record.pk)
            self._side_pool.submit(self._settle_one, workspace, record)

    def _settle_one(self, workspace: Workspace, record: ToolCall) -> None:
        try:
            with workspace_schema(workspace):
                if settle_queued_call(workspace=workspace, record=record):
                    self.say(f"{workspace.slug}/{str(record.mission_id)[:8]} queued {record.tool} settled")
        except Exception:
            logger.exception("settling queued call %s failed", record.pk)
        finally:
            connections.close_all()
            self.events.put(("settled", record.pk))
