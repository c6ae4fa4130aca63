"""``manage.py bench_runtime``: the runtime benchmark (see apps.crews.bench); last line JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.crews import bench


class Command(BaseCommand):
    help = "Benchmark the crew runtime: 50 offline missions of 10 steps on 2 workers, overhead, resume after kill."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--missions", type=int, default=50)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=8, help="Mission slots per worker.")

    def handle(self, *args: Any, **options: Any) -> None:
        def log(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        result = bench.run(
            missions=max(1, options["missions"]),
            workers=max(1, options["workers"]),
            concurrency=max(1, options["concurrency"]),
            log=log,
        )
        self.stdout.write(json.dumps(result))
