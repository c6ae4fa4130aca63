"""``manage.py bench_budgets``: overspend, gateway overhead and reserve+settle throughput.
See ``apps.llm.bench``. The last line of output is JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.llm.bench import PHASES, run_benchmark


class Command(BaseCommand):
    help = "Benchmark budget enforcement through the gateway (last line: JSON)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=32)
        parser.add_argument("--admit", type=int, default=320, help="Calls the mission budget admits.")
        parser.add_argument("--overhead-samples", type=int, default=400)
        parser.add_argument("--throughput-seconds", type=float, default=5.0)
        parser.add_argument(
            "--throughput-workers", type=int, default=None, help="Worker processes for phase 3 (default: --workers)."
        )
        parser.add_argument(
            "--throughput-processes",
            type=int,
            default=None,
            help="Processes the phase 3 workers are spread over, as threads (default: one per CPU).",
        )
        parser.add_argument(
            "--phases", default=",".join(PHASES), help="Comma-separated subset of: " + ", ".join(PHASES)
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_benchmark(
            workers=options["workers"],
            admit=options["admit"],
            overhead_samples=options["overhead_samples"],
            throughput_seconds=options["throughput_seconds"],
            throughput_workers=options["throughput_workers"],
            throughput_processes=options["throughput_processes"],
            phases=tuple(p.strip() for p in options["phases"].split(",") if p.strip()),
            log=lambda line: self.stdout.write(line),
        )
        self.stdout.write(json.dumps(result, sort_keys=True))
