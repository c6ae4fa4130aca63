"""The vault benchmark (``manage.py bench_vault``, ``make bench-vault``).

In a dedicated workspace it measures decryption throughput, Keeper decision latency on the
rule-judge path, and 20 concurrent tool calls hitting one expired OAuth token against a real
local token endpoint that rotates refresh tokens (exactly one refresh must happen). Then it
scans every table of the workspace and public schemas (journal included) and every log
record emitted meanwhile for the plaintexts it used: there must be none.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision

from . import services
from .devservers import OAuthTokenServer
from .keeper import keeper_request
from .models import Secret
from .oauth import get_access_token
from .scan import known_plaintexts, scan_plaintext

BENCH_SLUG = "bench-vault"
Say = Callable[[str], None]


def bench_workspace(say: Say) -> Workspace:
    workspace = Workspace.objects.filter(slug=BENCH_SLUG).first()
    if workspace is None:
        say(f"provisioning workspace {BENCH_SLUG}")
        workspace = workspace_provision(name="Vault benchmark", slug=BENCH_SLUG).workspace
    return workspace


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class _Capture(logging.Handler):
    """Every log record emitted during the run, formatted, to be scanned for plaintext."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record must not stop the benchmark
            self.lines.append(str(record.msg))


@contextmanager
def _captured_logs() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    previous = root.level
    # Capture everything, but keep the console as quiet as it was.
    quieted = [(h, h.level) for h in root.handlers]
    for other, level in quieted:
        other.setLevel(max(level, previous))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for other, level in quieted:
            other.setLevel(level)


def bench_decrypt(*, secrets: int, rounds: int, run: str, say: Say) -> tuple[dict[str, Any], list[str]]:
    values = [f"bench-{run}-{i:04d}-" + uuid.uuid4().hex for i in range(secrets)]
    for i, value in enumerate(values):
        services.secret_create(name=f"bench-{run}-{i:04d}", value=value, tier="L2" if i % 2 else "L1")
    loaded = list(Secret.objects.filter(name__startswith=f"bench-{run}-"))
    started = time.perf_counter()
    count = 0
    for _ in range(rounds):
        for secret in loaded:
            secret.value.reveal()
            count += 1
    elapsed = time.perf_counter() - started
    say(f"decrypt: {count} values in {elapsed:.3f}s")
    return {"decrypt_per_s": round(count / elapsed), "decrypt_values": count}, values


def bench_keeper(*, decisions: int, run: str, say: Say) -> dict[str, Any]:
    crew, agent, mission = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    l1 = Secret.objects.get(name=f"bench-{run}-0000")
    l2 = Secret.objects.get(name=f"bench-{run}-0001")
    for secret in (l1, l2):
        services.grant_create(secret=secret, subject_type="crew", subject_id=crew)
    # An agent that pastes a secret into its intent: the journal must get it scrubbed.
    leaky_intent = f"Refund invoice 1042 for ticket 88 via the billing API ({l1.value.reveal()})"
    timings: dict[str, list[float]] = {"L1": [], "L2": []}
    with override_settings(VAULT_JUDGE="rules"):
        for i in range(decisions):
            for tier, secret in (("L1", l1), ("L2", l2)):
                started = time.perf_counter()
                keeper_request(
                    secret_name=secret.name,
                    crew_id=crew,
                    agent_id=agent,
                    mission_id=mission,
                    intent=leaky_intent if i == 0 else "Refund invoice 1042 for ticket 88 through the billing API",
                    tool_name="billing_refund",
                )
                timings[tier].append(time.perf_counter() - started)
    l2_times = timings["L2"]
    result = {
        "keeper_decision_p50_ms": _ms(statistics.median(l2_times)),
        "keeper_decision_p95_ms": _ms(_percentile(l2_times, 0.95)),
        "keeper_l1_p50_ms": _ms(statistics.median(timings["L1"])),
        "keeper_decisions": decisions * 2,
    }
    say(
        f"keeper (L2, rule judge): p50 {result['keeper_decision_p50_ms']} ms, p95 {result['keeper_decision_p95_ms']} ms"
    )
    return result


def bench_oauth(*, workspace: Workspace, calls: int, run: str, say: Say) -> tuple[dict[str, Any], list[str]]:
    with OAuthTokenServer(client_id=f"bench-{run}", latency_seconds=0.05) as server:
        first_access = server.issue_access_token()
        first_refresh = server.issue_refresh_token()
        conn = services.oauth_connection_create(
            provider=f"bench-{run}",
            client_id=server.client_id,
            client_secret=server.client_secret,
            token_url=server.token_url,
            refresh_token=first_refresh,
            access_token=first_access,
            expires_at=timezone.now() - timedelta(minutes=1),
        )
        barrier = threading.Barrier(calls)
        tokens: list[str] = []
        errors: list[str] = []

        def tool_call() -> None:
            try:
                with workspace_schema(workspace):
                    barrier.wait(timeout=30)
                    tokens.append(get_access_token(conn.pk))
            except Exception as exc:  # counted, not raised: the result says how many succeeded
                errors.append(type(exc).__name__)
            finally:
                connection.close()  # each thread used its own database connection

        started = time.perf_counter()
        threads = [threading.Thread(target=tool_call, name=f"bench-oauth-{i}") for i in range(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        elapsed = time.perf_counter() - started
        conn.refresh_from_db()
        used = [first_access, first_refresh, server.client_secret, *set(tokens)]
        if conn.refresh_token is not None:
            used.append(conn.refresh_token.reveal())
        result = {
            "oauth_concurrent_calls": calls,
            "oauth_successes": len(tokens),
            "oauth_errors": len(errors),
            "oauth_refreshes": server.refreshes,
            "oauth_reused_refresh_rejected": server.rejected_reuse,
            "oauth_same_token": len(set(tokens)) == 1,
            "oauth_wall_ms": _ms(elapsed),
        }
        say(f"oauth: {len(tokens)}/{calls} calls succeeded, {server.refreshes} refresh(es), {elapsed * 1000:.0f} ms")
        return result, used


def scan(*, workspace: Workspace, needles: list[str], log_lines: list[str], say: Say) -> dict[str, Any]:
    all_needles = sorted(set(needles) | set(known_plaintexts()))
    hits = scan_plaintext(needles=all_needles, schemas=[workspace.schema_name, "public"])
    log_hits = sum(1 for line in log_lines for needle in all_needles if needle in line)
    for hit in hits:
        say(f"PLAINTEXT FOUND: {hit.schema}.{hit.table}.{hit.column} ({hit.rows} rows)")
    if log_hits:
        say(f"PLAINTEXT FOUND in {log_hits} log line(s)")
    return {
        "plaintext_hits": sum(h.rows for h in hits) + log_hits,
        "plaintext_needles": len(all_needles),
        "log_lines_scanned": len(log_lines),
    }


def run(*, secrets: int = 50, rounds: int = 200, decisions: int = 200, calls: int = 20, say: Say) -> dict[str, Any]:
    workspace = bench_workspace(say)
    run_id = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {}
    with workspace_schema(workspace), _captured_logs() as logs:
        decrypt, needles = bench_decrypt(secrets=secrets, rounds=rounds, run=run_id, say=say)
        result.update(decrypt)
        result.update(bench_keeper(decisions=decisions, run=run_id, say=say))
        oauth, oauth_needles = bench_oauth(workspace=workspace, calls=calls, run=run_id, say=say)
        result.update(oauth)
    with workspace_schema(workspace):
        result.update(scan(workspace=workspace, needles=[*needles, *oauth_needles], log_lines=logs.lines, say=say))
        # Leave the workspace small for the next run (deletions are journaled like any other).
        for secret in Secret.objects.filter(name__startswith=f"bench-{run_id}-"):
            services.secret_delete(secret=secret)
    result["ok"] = (
        result["oauth_refreshes"] == 1 and result["plaintext_hits"] == 0 and result["oauth_successes"] == calls
    )
    return result
