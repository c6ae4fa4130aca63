from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.memory import bench


class Command(BaseCommand):
    help = "Benchmark memory (kNN latency and recall, 2-hop graph context, local embedding rate). Last line: JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunks", type=int, default=100_000)
        parser.add_argument("--people", type=int, default=6000, help="Persons in the graph (entities ~ 2.5x this).")
        parser.add_argument("--queries", type=int, default=300)
        parser.add_argument(
            "--rebuild", action="store_true", help="Reload the corpus and the graph even if they are there."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def log(message: str) -> None:
            self.stdout.write(f"[bench-memory] {message}")
            self.stdout.flush()

        result = bench.run(
            chunks=options["chunks"],
            people=options["people"],
            queries=options["queries"],
            rebuild=options["rebuild"],
            log=log,
        )
        self.stdout.write(bench.as_json(result))
