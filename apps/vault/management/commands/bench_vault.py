"""``manage.py bench_vault``: decryption throughput, Keeper latency (rule judge), 20 concurrent
calls on one expired OAuth token, and a plaintext scan (see apps.vault.bench). Progress
lines, then one line of JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.vault import bench


class Command(BaseCommand):
    help = "Benchmark the vault: decrypt/s, Keeper decision latency, OAuth refresh under concurrency, plaintext scan."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--secrets", type=int, default=50)
        parser.add_argument("--rounds", type=int, default=200, help="Decryption passes over the secrets.")
        parser.add_argument("--decisions", type=int, default=200, help="Keeper decisions per tier (L1, L2).")
        parser.add_argument("--calls", type=int, default=20, help="Concurrent tool calls on one expired token.")

    def handle(self, *args: Any, **options: Any) -> None:
        def say(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        result = bench.run(
            secrets=options["secrets"],
            rounds=options["rounds"],
            decisions=options["decisions"],
            calls=options["calls"],
            say=say,
        )
        self.stdout.write(json.dumps(result))
