"""The budgets benchmark (``manage.py bench_budgets``, ``make bench-budgets``).

Three phases against a fake Anthropic Messages API running in a child process on loopback,
reached through the real ``anthropic`` SDK:

1. overhead: sequential calls, alternating the bare provider round trip (the same provider
   object and HTTP connection pool the gateway uses) and a full gateway call (routing,
   reservation, journal, provider, settlement), side by side in the same run;
2. concurrency: N workers, each with its own database connection, call the gateway until a
   mission budget sized for exactly K worst-case calls blocks them; the provider bills the
   worst case, so exactly K must be admitted and the spend must not pass the limit;
3. throughput: N workers reserve and settle directly (no provider) against workspace, crew,
   mission and agent budgets at once, for a fixed time. The workers are threads spread over
   one process per CPU (``--throughput-processes``), as the gateway runs in a deployment:
   several worker threads per process, so the process combines the calls that arrive
   together (apps.core.combine); the JSON says how much.

Phase 2 runs one process per worker; every worker (process or thread) has its own database
connection.

The last line printed is JSON.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connections

from apps.budgets.errors import BudgetExceeded
from apps.budgets.models import Budget, BudgetTotal
from apps.budgets.services import (
    Charge,
    Scopes,
    Tokens,
    budget_create,
    budget_reserve,
    budget_settle,
    budget_totals_rebuild,
    combiner_stats,
)
from apps.core.context import Actor, acting_as
from apps.tenants.access import activate, workspace_schema
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision

from .bench_worker import WorkerJob, worker_main
from .catalog.selectors import catalog_invalidate, model_resolve
from .credentials import ProviderCredential, register_credential_resolver, unregister_credential_resolver
from .gateway import chat, pricing_of, worst_case_microusd
from .providers import get_provider
from .tokens import estimate_input_tokens
from .types import CallContext, ChatRequest, Message, ToolSpec

BENCH_SLUG = "benchmark"
BENCH_MODEL = "claude-haiku-4-5"
PHASES = ("overhead", "concurrency", "throughput")
BENCH_ACTOR = Actor(kind="system", id="bench", label="bench_budgets")

SYSTEM_PROMPT = (
    "You are the support agent of Acme Corp. Answer the customer's ticket politely and precisely. "
    "Look the customer up before answering, never promise refunds above 50 USD without approval, "
    "and keep answers under 150 words. " * 4
)
TOOLS = [
    ToolSpec(
        "lookup_customer",
        "Find a customer by email.",
        {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
    ),
    ToolSpec(
        "send_email",
        "Send an email to a customer.",
        {
            "type": "object",
            "properties": {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}},
            "required": ["to", "subject", "body"],
        },
    ),
]


def bench_request(n: int) -> ChatRequest:
    return ChatRequest(
        system=SYSTEM_PROMPT,
        messages=[Message.user(f"Ticket #{n}: my order 4711 arrived damaged, what can you do? -- ana@example.com")],
        tools=TOOLS,
        max_tokens=512,
    )


def cpu_calibration_ms() -> float:
    """Milliseconds a fixed piece of pure Python takes here (the best of three): a shared or
    throttled machine shows in it, so runs on different days can be compared."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for n in range(1_000_000):
            total += n
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ProviderProcess:
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_provider_server() -> ProviderProcess:
    """The fake Messages API in its own process, so it does not share our interpreter lock."""
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.llm.devservers", "--kind", "anthropic", "--usage", "worst-case"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().strip())
    return ProviderProcess(process=process, url=f"http://127.0.0.1:{port}")


def bench_workspace() -> Workspace:
    workspace = Workspace.objects.filter(slug=BENCH_SLUG).first()
    if workspace is None:
        workspace = workspace_provision(name="Budgets benchmark", slug=BENCH_SLUG).workspace
    return workspace


def run_benchmark(
    *,
    workers: int = 32,
    admit: int = 320,
    overhead_samples: int = 400,
    throughput_seconds: float = 5.0,
    phases: tuple[str, ...] = ("overhead", "concurrency", "throughput"),
    throughput_workers: int | None = None,
    throughput_processes: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    close_old_connections()
    workspace = bench_workspace()
    server = start_provider_server()
    resolver_name = "bench-fake-anthropic"

    def bench_credentials(provider: str, model: Any) -> ProviderCredential | None:
        if provider == "anthropic":
            return ProviderCredential(api_key="bench-key", base_url=server.url)
        return None

    register_credential_resolver(resolver_name, bench_credentials, priority=0)
    catalog_invalidate()
    try:
        with workspace_schema(workspace), acting_as(BENCH_ACTOR):
            model = model_resolve(model_id=BENCH_MODEL)
            if model is None:
                raise RuntimeError(f"{BENCH_MODEL} is not in the catalog; run migrations")
            result: dict[str, Any] = {
                "model": BENCH_MODEL,
                "workers": workers,
                "provider_url": server.url,
                "cpus": os.cpu_count(),
                # Other work on the machine skews latency; the load is part of the result.
                "load_avg_1m_start": round(os.getloadavg()[0], 2),
                "cpu_calibration_ms_start": cpu_calibration_ms(),
            }
            if "overhead" in phases:
                result.update(_overhead(workspace, model, overhead_samples, log))
            if "concurrency" in phases:
                result.update(_concurrency(workspace, model, workers, admit, server.url, log))
            if "throughput" in phases:
                result.update(
                    _throughput(
                        workspace,
                        throughput_workers or workers,
                        throughput_processes or os.cpu_count() or 1,
                        throughput_seconds,
                        server.url,
                        log,
                    )
                )
            result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
            result["cpu_calibration_ms_end"] = cpu_calibration_ms()
            differences = budget_totals_rebuild(apply=False)
            result["totals_differences"] = len(differences)
            log(f"running totals vs ledger: {len(differences)} difference(s)")
    finally:
        unregister_credential_resolver(resolver_name)
        server.stop()
    result["targets_met"] = bool(
        set(phases) >= set(PHASES)
        and result["overspend_microusd"] == 0
        and result["admitted"] == result["expected_admitted"]
        and result["gateway_overhead_p50_ms"] < 3
        and result["gateway_overhead_p99_ms"] < 10
        and result["reserve_settle_per_s"] >= 1000
        and result["totals_differences"] == 0
    )
    return result


def _overhead(workspace: Workspace, model: Any, samples: int, log: Callable[[str], None]) -> dict[str, Any]:
    log(f"phase 1: gateway overhead, {samples} side-by-side samples")
    crew_id, mission_id, agent_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Budgets at every level, so each gateway call locks four running totals, as in production.
    for scope, scope_id in (("crew", crew_id), ("mission", mission_id), ("agent", agent_id)):
        budget_create(name=f"bench overhead {scope}", scope=scope, scope_id=scope_id, window="day",
                      limit_microusd=10**12, mode="tiered")  # fmt: skip
    _ensure_workspace_budget()
    provider = get_provider(model.provider)
    credential = ProviderCredential(api_key="bench-key", base_url=_server_url())
    context_base = {"crew_id": crew_id, "mission_id": mission_id, "agent_id": agent_id, "agent_model": model.model_id}
    bare: list[float] = []
    gateway: list[float] = []
    internal: list[float] = []
    warmup = 20
    for i in range(samples + warmup):
        request = bench_request(i)
        started = time.perf_counter()
        provider.chat(model=model, request=request, credential=credential)
        bare_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        response = chat(request=request, context=CallContext(request_id=f"ovh-{uuid.uuid4().hex}", **context_base))
        gateway_ms = (time.perf_counter() - started) * 1000
        if i >= warmup:
            bare.append(bare_ms)
            gateway.append(gateway_ms)
            internal.append(response.latency_ms - response.provider_ms)
    result = {
        "bare_p50_ms": round(_percentile(bare, 50), 3),
        "bare_p99_ms": round(_percentile(bare, 99), 3),
        "gateway_p50_ms": round(_percentile(gateway, 50), 3),
        "gateway_p99_ms": round(_percentile(gateway, 99), 3),
        # Per call: the gateway's own time (total minus its provider round trip).
        "gateway_overhead_p50_ms": round(_percentile(internal, 50), 3),
        "gateway_overhead_p99_ms": round(_percentile(internal, 99), 3),
        "gateway_overhead_mean_ms": round(statistics.fmean(internal), 3),
        # Across calls: gateway latency quantile minus the bare round trip's same quantile.
        "overhead_by_quantile_p50_ms": round(_percentile(gateway, 50) - _percentile(bare, 50), 3),
        "overhead_by_quantile_p99_ms": round(_percentile(gateway, 99) - _percentile(bare, 99), 3),
        "overhead_samples": samples,
    }
    log(
        f"  bare p50 {result['bare_p50_ms']} ms, gateway p50 {result['gateway_p50_ms']} ms; "
        f"overhead p50 {result['gateway_overhead_p50_ms']} ms, p99 {result['gateway_overhead_p99_ms']} ms"
    )
    return result


def _server_url() -> str:
    from .credentials import resolve_credential

    model = model_resolve(model_id=BENCH_MODEL)
    assert model is not None
    credential = resolve_credential(provider="anthropic", model=model)
    assert credential is not None
    return credential.base_url


def _ensure_workspace_budget() -> None:
    if not Budget.objects.filter(scope="workspace", name="bench workspace", is_active=True).exists():
        budget_create(name="bench workspace", scope="workspace", window="month", limit_microusd=10**13, mode="tiered")


# --- worker processes -------------------------------------------------------------------------
# Phase 2 runs each worker in its own process (its own interpreter lock and database
# connection). Phase 3 runs its workers as threads, several per process, each with its own
# connection, as a worker process that runs several agents does: the process's reservations
# and closes that arrive together then go to the database together (apps.core.combine). No
# thread holds a row lock between statements: every statement commits on its own.


def run_worker_job(job: WorkerJob, barrier: Any, results: Any) -> None:
    """Runs in a worker process (see ``bench_worker.worker_main``)."""
    try:
        workspace = Workspace.objects.get(slug=job.workspace_slug)
        activate(workspace)

        def credentials(provider: str, model: Any) -> ProviderCredential | None:
            return (
                ProviderCredential(api_key="bench-key", base_url=job.provider_url) if provider == "anthropic" else None
            )

        register_credential_resolver("bench-fake-anthropic", credentials, priority=0)
        with acting_as(BENCH_ACTOR):
            if job.phase == "gateway":
                outcome = _gateway_worker(job, barrier)
            else:
                outcome = _reserve_settle_threads(job, workspace, barrier)
        results.put((job.index, outcome))
    except BaseException as exc:  # reported to the parent, which fails the run
        results.put((job.index, {"error": repr(exc)}))
        with contextlib.suppress(Exception):
            barrier.abort()
    finally:
        connections.close_all()


def _gateway_worker(job: WorkerJob, barrier: Any) -> dict[str, Any]:
    request = bench_request(0)
    agent_id = uuid.uuid4()
    model_resolve(model_id=job.model_id)  # warm the catalog cache before the start line
    barrier.wait()
    admitted = blocked = n = 0
    while blocked < 3:  # keep knocking a little: one call too many would show here
        n += 1
        try:
            chat(
                request=request,
                context=CallContext(
                    mission_id=job.mission_id, agent_id=agent_id, agent_model=job.model_id,
                    request_id=f"cc-{job.mission_id}-{job.index}-{n}",
                ),
            )  # fmt: skip
            admitted += 1
        except BudgetExceeded:
            blocked += 1
    return {"admitted": admitted, "blocked": blocked}


def _reserve_settle_threads(job: WorkerJob, workspace: Workspace, barrier: Any) -> dict[str, Any]:
    """``job.threads`` workers in this process, each with its own connection."""
    outcomes: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    # What this process's combiner had done once every thread had warmed up: not measured.
    warmed: dict[str, float] = {}
    all_warm = threading.Barrier(job.threads, action=lambda: warmed.update(combiner_stats()))

    def work() -> None:
        try:
            activate(workspace)
            with acting_as(BENCH_ACTOR):
                outcomes.append(_reserve_settle_worker(job, all_warm, barrier))
        except BaseException as exc:
            errors.append(exc)
            with contextlib.suppress(Exception):
                all_warm.abort()
                barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, name=f"bench-{job.index}-{n}") for n in range(job.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    combined = combiner_stats()
    return {
        "pairs": sum(o["pairs"] for o in outcomes),
        "combined": {key: combined[key] - warmed.get(key, 0) for key in ("calls", "batches")},
    }


def _reserve_settle_worker(job: WorkerJob, all_warm: threading.Barrier, barrier: Any) -> dict[str, Any]:
    model = model_resolve(model_id=job.model_id)
    assert model is not None
    pricing = pricing_of(model)
    mission_id, agent_id = uuid.uuid4(), uuid.uuid4()
    budget_create(name=f"bench agent {agent_id.hex[:8]}", scope="agent", scope_id=agent_id, window="hour",
                  limit_microusd=10**11, mode="hard")  # fmt: skip
    scopes = Scopes(crew_id=job.crew_id, mission_id=mission_id, agent_id=agent_id)
    charge = Charge(amount_microusd=5_000, pricing=pricing, input_tokens=800, max_tokens=512)
    tokens = Tokens(input=700, output=90)

    def pair() -> None:
        reservation = budget_reserve(scopes=scopes, charge=charge, request_id=f"tp-{uuid.uuid4().hex}")
        budget_settle(reservation=reservation, amount_microusd=3_210, tokens=tokens, pricing=pricing)

    # Warm up before the clock starts: the first reservation of a scope chain in a process
    # takes the general path (it learns the chain's budgets), and a new connection prepares
    # its statements. The phase measures the steady state.
    pair()
    all_warm.wait()
    barrier.wait()
    deadline = time.perf_counter() + job.seconds
    pairs = 0
    while time.perf_counter() < deadline:
        pair()
        pairs += 1
    return {"pairs": pairs}


def _database_name() -> str:
    return str(connections["default"].settings_dict["NAME"])


def _run_processes(jobs: list[WorkerJob], timeout: float) -> tuple[list[dict[str, Any]], float]:
    """Start one process per job, release them (all their threads) together, return their
    results and the time from the start line to the last one finishing."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(sum(job.threads for job in jobs) + 1)
    results = context.Queue()
    connections.close_all()  # nothing of ours crosses into the children
    processes = [context.Process(target=worker_main, args=(job, barrier, results)) for job in jobs]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=timeout)
    started = time.perf_counter()
    outcomes: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(jobs) and time.monotonic() < deadline:
        try:
            index, outcome = results.get(timeout=1.0)
            outcomes[index] = outcome
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                break  # every worker is gone and nothing is left to read
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    missing = [job.index for job in jobs if job.index not in outcomes]
    if missing:
        raise RuntimeError(f"bench workers {missing} did not report")
    return [outcomes[job.index] for job in jobs], elapsed


def _concurrency(
    workspace: Workspace, model: Any, workers: int, admit: int, provider_url: str, log: Callable[[str], None]
) -> dict[str, Any]:
    mission_id = uuid.uuid4()
    request = bench_request(0)
    worst = worst_case_microusd(model, request, estimate_input_tokens(request))
    limit = worst * admit
    budget = budget_create(
        name=f"bench mission {mission_id.hex[:8]}", scope="mission", scope_id=mission_id, window="mission",
        limit_microusd=limit, mode="hard",
    )  # fmt: skip
    log(f"phase 2: {workers} worker processes against a mission budget of {admit} worst-case calls ({limit} micro-USD)")
    jobs = [
        WorkerJob(
            phase="gateway",
            index=i,
            workspace_slug=workspace.slug,
            provider_url=provider_url,
            model_id=model.model_id,
            mission_id=mission_id,
            database_name=_database_name(),
        )
        for i in range(workers)
    ]
    outcomes, elapsed = _run_processes(jobs, timeout=600)
    activate(workspace)
    errors = [o["error"] for o in outcomes if "error" in o]
    admitted = sum(o.get("admitted", 0) for o in outcomes)
    total = BudgetTotal.objects.get(budget=budget)
    overspend = max(0, total.spent_microusd + total.reserved_microusd - limit)
    result = {
        "admitted": admitted,
        "expected_admitted": admit,
        "blocked_attempts": sum(o.get("blocked", 0) for o in outcomes),
        "overspend_microusd": overspend,
        "mission_limit_microusd": limit,
        "mission_spent_microusd": total.spent_microusd,
        "mission_reserved_left_microusd": total.reserved_microusd,
        "concurrent_calls_per_s": round(admitted / elapsed, 1) if elapsed else 0.0,
        "errors": errors[:5],
    }
    log(
        f"  admitted {admitted} of {admit} expected, {result['blocked_attempts']} blocked attempts, "
        f"overspend {overspend} micro-USD, {result['concurrent_calls_per_s']} calls/s"
    )
    return result


def _throughput(
    workspace: Workspace,
    workers: int,
    processes: int,
    seconds: float,
    provider_url: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    processes = max(1, min(processes, workers))
    per_process = [workers // processes + (1 if i < workers % processes else 0) for i in range(processes)]
    log(f"phase 3: reserve+settle throughput, {workers} workers in {processes} processes for {seconds:.0f} s")
    _ensure_workspace_budget()
    crew_id = uuid.uuid4()
    budget_create(name=f"bench crew {crew_id.hex[:8]}", scope="crew", scope_id=crew_id, window="day",
                  limit_microusd=10**12, mode="tiered")  # fmt: skip
    jobs = [
        WorkerJob(
            phase="reserve_settle",
            index=i,
            workspace_slug=workspace.slug,
            provider_url=provider_url,
            model_id=BENCH_MODEL,
            crew_id=crew_id,
            seconds=seconds,
            database_name=_database_name(),
            threads=threads,
        )
        for i, threads in enumerate(per_process)
    ]
    outcomes, _elapsed = _run_processes(jobs, timeout=600 + seconds)
    activate(workspace)
    errors = [o["error"] for o in outcomes if "error" in o]
    if errors:
        raise RuntimeError(f"reserve+settle workers failed: {errors[:3]}")
    pairs = sum(o["pairs"] for o in outcomes)
    calls = sum(o["combined"]["calls"] for o in outcomes)
    batches = sum(o["combined"]["batches"] for o in outcomes)
    result = {
        "reserve_settle_pairs": pairs,
        "reserve_settle_per_s": round(pairs / seconds, 1),
        "reserve_settle_workers": workers,
        "reserve_settle_processes": processes,
        # Reservations and closes sent to the database, and in how many statements.
        "reserve_settle_calls": calls,
        "reserve_settle_statements": batches,
        "reserve_settle_mean_batch": round(calls / batches, 2) if batches else 0.0,
    }
    log(f"  {pairs} pairs in {seconds:.1f} s: {result['reserve_settle_per_s']} pairs/s")
    return result
