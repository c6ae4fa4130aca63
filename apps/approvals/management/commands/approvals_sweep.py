"""Apply approval timeouts (deny / approve / escalate) in every workspace.

The worker (``run_crews``) calls the same function on its sweep; this command is for cron,
for operators, and for a deployment without a worker. ``--loop N`` keeps sweeping every N
seconds (or sooner when the next deadline falls due)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from apps.approvals.gate import sweep_timeouts


class Command(BaseCommand):
    help = "Apply the timeout action of overdue approval requests in every workspace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", type=float, default=0, help="Sweep every N seconds until interrupted.")

    def handle(self, *args: Any, **options: Any) -> None:
        interval = float(options["loop"])
        while True:
            report = sweep_timeouts()
            self.stdout.write(json.dumps(report.as_dict()))
            if interval <= 0:
                return
            pause = interval
            if report.next_deadline is not None:
                pause = min(interval, max(0.05, (report.next_deadline - timezone.now()).total_seconds()))
            time.sleep(pause)
