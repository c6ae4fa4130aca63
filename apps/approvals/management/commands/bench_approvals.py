"""``manage.py bench_approvals``: push latency to open inboxes and resume latency after a
decision (see apps.approvals.bench). Progress lines, then one line of JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.approvals import bench

TARGETS = {"push_p95_ms": 250.0, "resume_p95_ms": 1000.0}


class Command(BaseCommand):
    help = "Benchmark approval push (request -> reviewer WebSocket) and resume (decision -> next step)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=200, help="Requests pushed (>= 200 for the report).")
        parser.add_argument("--clients", type=int, default=2, help="Connected reviewer WebSocket clients.")
        parser.add_argument("--missions", type=int, default=200, help="Missions resumed after a decision.")
        parser.add_argument("--worker-concurrency", type=int, default=8)
        parser.add_argument("--skip-resume", action="store_true", help="Only the push half.")

    def handle(self, *args: Any, **options: Any) -> None:
        def say(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        workspace, reviewer = bench.bench_workspace(say)
        port = bench.free_port()
        result: dict[str, Any] = {}
        say(f"starting daphne on 127.0.0.1:{port}")
        with bench.daphne(port):
            result.update(
                bench.bench_push(
                    workspace=workspace,
                    reviewer=reviewer,
                    port=port,
                    requests=options["requests"],
                    clients=options["clients"],
                    say=say,
                )
            )
            say(f"push: p50 {result['push_p50_ms']} ms, p95 {result['push_p95_ms']} ms")
            if options["skip_resume"] or not bench.run_crews_available():
                say(
                    "resume: skipped"
                    + ("" if options["skip_resume"] else " (no run_crews command: the runtime is missing)")
                )
                result.update(bench.summary("resume", []))
            else:
                result.update(
                    bench.bench_resume(
                        workspace=workspace,
                        reviewer=reviewer,
                        port=port,
                        missions=options["missions"],
                        concurrency=options["worker_concurrency"],
                        say=say,
                    )
                )
                say(f"resume: p50 {result['resume_p50_ms']} ms, p95 {result['resume_p95_ms']} ms")
        result["targets"] = TARGETS
        result["meets_targets"] = all(
            result.get(key) is not None and result[key] < limit for key, limit in TARGETS.items()
        )
        self.stdout.write(json.dumps(result))
