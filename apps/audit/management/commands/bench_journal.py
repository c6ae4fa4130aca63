"""``make bench-journal``: append, batched append and verify rates, and tamper detection.

Runs in a dedicated workspace (``journal-bench``, provisioned on first use) so the demo's
journal stays clean. Tampering happens inside transactions that are rolled back, so the
benchmark journal itself stays valid run after run. The last line of output is JSON.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from apps.audit import catalog, live
from apps.audit.catalog import EntryKind, Severity
from apps.audit.models import JournalEntry, JournalHead
from apps.audit.services import (
    NewEntry,
    journal_append,
    journal_append_many,
    journal_checkpoint,
    journal_compact,
    retention_policy_set,
)
from apps.audit.verify import VerifyResult, journal_verify
from apps.tenants.access import connection, workspace_schema
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision

BENCH_SLUG = "journal-bench"
TARGETS = {"append_per_s": 2_000, "batch_append_per_s": 10_000, "verify_per_s": 100_000}

BENCH_KIND = EntryKind(
    "bench.event",
    Severity.INFO,
    required={"n": int, "model": str, "tokens": int, "cost_microusd": int, "note": str},
    description="Benchmark traffic (journal-bench workspace only).",
)


def _payload(n: int) -> dict[str, Any]:
    return {"n": n, "model": "claude-sonnet", "tokens": 1200 + n % 300, "cost_microusd": 4200, "note": "bench entry"}


class Command(BaseCommand):
    help = "Benchmark the journal; the last line is JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--appends", type=int, default=5_000, help="single-entry transactions per phase")
        parser.add_argument("--writers", type=int, default=16, help="concurrent appending threads")
        parser.add_argument("--batches", type=int, default=20, help="batched transactions")
        parser.add_argument("--batch-size", type=int, default=1_000)

    def handle(self, *args: Any, **options: Any) -> None:
        catalog.register(BENCH_KIND)
        workspace = Workspace.objects.filter(slug=BENCH_SLUG).first()
        if workspace is None:
            self.stdout.write(f"provisioning workspace {BENCH_SLUG}")
            workspace = workspace_provision(name="Journal benchmark", slug=BENCH_SLUG).workspace
        with workspace_schema(workspace):
            result = self._run(workspace, options)
        self.stdout.write(json.dumps(result, sort_keys=True))

    def _run(self, workspace: Workspace, options: dict[str, Any]) -> dict[str, Any]:
        appends, batches, size = options["appends"], options["batches"], options["batch_size"]
        writers = options["writers"]
        # Keep the benchmark journal bounded: earlier runs' entries older than a day are
        # compacted (which the verification below then also has to bridge).
        retention_policy_set(severity=Severity.INFO, keep_days=1)
        compacted = sum(c.removed for c in journal_compact())
        if compacted:
            self.stdout.write(f"compacted {compacted} entries of earlier runs")

        # Interleaved with a baseline (one-row INSERT + COMMIT on the same connection), so the
        # append rate can be read against what this machine's commits cost at that moment.
        append_s = baseline_s = 0.0
        baseline_n = 0
        rounds = 5
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS journal_bench_baseline (n integer)")
        for r in range(rounds):
            count = appends // rounds + (1 if r < appends % rounds else 0)
            started = time.perf_counter()
            for n in range(count):
                journal_append(kind="bench.event", payload=_payload(n))
            append_s += time.perf_counter() - started
            started = time.perf_counter()
            with connection.cursor() as cursor:
                for n in range(count // 4):
                    cursor.execute("INSERT INTO journal_bench_baseline VALUES (%s)", [n])
            baseline_s += time.perf_counter() - started
            baseline_n += count // 4
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE journal_bench_baseline")
        self.stdout.write(
            f"append, one writer: {appends} single-entry transactions in {append_s:.2f}s "
            f"(baseline: {baseline_n} one-row INSERT+COMMITs at {baseline_n / baseline_s:.0f}/s)"
        )
        concurrent_s = _concurrent_appends(workspace, appends, writers)
        self.stdout.write(f"append, {writers} writers: {appends} single-entry transactions in {concurrent_s:.2f}s")

        started = time.perf_counter()
        for b in range(batches):
            journal_append_many(
                entries=[NewEntry(kind="bench.event", payload=_payload(b * size + i)) for i in range(size)]
            )
        batch_s = time.perf_counter() - started
        self.stdout.write(f"batch append: {batches} x {size} entries in {batch_s:.2f}s")
        live.flush(timeout=30)

        journal_checkpoint()
        jobs = os.cpu_count() or 1
        clean = journal_verify(jobs=jobs)
        self.stdout.write(
            f"verify: {clean.entries} entries in {clean.seconds:.2f}s with {jobs} processes "
            f"({'OK' if clean.ok else 'FAILED'})"
        )

        tamper = {
            "edited_payload": self._tampered(_edit_payload),
            "deleted_middle_entry": self._tampered(_delete_middle),
            "truncated_tail": self._tampered(_truncate_tail),
            "reordered_pair": self._tampered(_reorder_pair),
        }
        for case, detected in tamper.items():
            self.stdout.write(f"tamper {case}: {'detected' if detected else 'NOT DETECTED'}")

        rates = {
            # One writer, one entry per transaction, on disk when journal_append returns.
            "append_per_s": round(appends / append_s),
            "batch_append_per_s": round(batches * size / batch_s),
            "verify_per_s": round(clean.entries / clean.seconds) if clean.seconds else 0,
        }
        return {
            **rates,
            "tamper_detected": sum(tamper.values()),
            "tamper_cases": len(tamper),
            "tamper": tamper,
            # The same appends from several threads of one process at once (they take turns
            # on the workspace's head; see journal_append_many).
            "append_concurrent_per_s": round(appends / concurrent_s),
            "append_writers": writers,
            "baseline_commit_per_s": round(baseline_n / baseline_s) if baseline_s else 0,
            "verified_entries": clean.entries,
            "verify_ok": clean.ok,
            "targets": TARGETS,
            "targets_met": clean.ok
            and all(tamper.values())
            and all(rates[name] >= target for name, target in TARGETS.items()),
        }

    def _tampered(self, change: Any) -> bool:
        """Apply ``change`` inside a transaction, verify, roll back; True if detected."""
        detected = False
        try:
            with transaction.atomic():
                expected = change()
                result: VerifyResult = journal_verify()
                detected = not result.ok and result.first_bad_seq == expected
                raise _Rollback
        except _Rollback:
            pass
        return detected


def _concurrent_appends(workspace: Workspace, appends: int, writers: int) -> float:
    """``appends`` single-entry transactions from ``writers`` threads (each with its own
    database connection, as daphne's and the worker's threads have); seconds taken."""
    start = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            with workspace_schema(workspace):
                journal_append(kind="bench.event", payload=_payload(0))  # connect before the start line
                start.wait()
                for n in range(index, appends, writers):
                    journal_append(kind="bench.event", payload=_payload(n))
        except BaseException as exc:
            errors.append(exc)
            start.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,), name=f"bench-writer-{i}") for i in range(writers)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


class _Rollback(Exception):
    pass


def _bypass(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def _middle() -> int:
    head = JournalHead.objects.get(pk=1)
    seq = head.last_seq // 2
    while not JournalEntry.objects.filter(seq=seq).exists():
        seq += 1
    return seq


def _edit_payload() -> int:
    seq = _middle()
    _bypass("UPDATE audit_journalentry SET payload = payload || '{\"cost_microusd\": 1}'::jsonb WHERE seq = %s", [seq])
    return seq


def _delete_middle() -> int:
    seq = _middle()
    _bypass("DELETE FROM audit_journalentry WHERE seq = %s", [seq])
    return seq


def _truncate_tail() -> int:
    """Delete the last entries, the checkpoint rows, and rewind the head: only the exported
    checkpoint file still knows how far the journal went."""
    head = JournalHead.objects.get(pk=1)
    cut = head.last_seq - 10
    prev = JournalEntry.objects.filter(seq__lt=cut).order_by("-seq").values_list("seq", "hash").first()
    assert prev is not None
    _bypass("DELETE FROM audit_journalentry WHERE seq >= %s", [cut])
    _bypass("DELETE FROM audit_journalcheckpoint", [])
    _bypass("UPDATE audit_journalhead SET last_seq = %s, last_hash = %s", [prev[0], prev[1]])
    return cut


def _reorder_pair() -> int:
    a = _middle()
    b = JournalEntry.objects.filter(seq__gt=a).order_by("seq").values_list("seq", flat=True).first()
    assert b is not None
    _bypass("UPDATE audit_journalentry SET seq = -1 WHERE seq = %s", [a])
    _bypass("UPDATE audit_journalentry SET seq = %s WHERE seq = %s", [a, b])
    _bypass("UPDATE audit_journalentry SET seq = %s WHERE seq = -1", [b])
    return a
