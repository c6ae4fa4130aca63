"""``manage.py run_crews``: the crew worker (see apps.crews.runtime.worker)."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.crews.runtime.worker import Worker


class Command(BaseCommand):
    help = "Run crew missions: claim runnable missions in every workspace, resume decided waits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=settings.CREWS_WORKER_CONCURRENCY)
        parser.add_argument("--sweep-seconds", type=float, default=float(settings.CREWS_SWEEP_SECONDS))
        parser.add_argument("--exit-when-idle", action="store_true", help="Stop when nothing is left to run.")

    def handle(self, *args: Any, **options: Any) -> None:
        def out(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        worker = Worker(
            concurrency=max(1, options["concurrency"]),
            sweep_seconds=max(0.5, options["sweep_seconds"]),
            out=out,
            exit_when_idle=options["exit_when_idle"],
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.request_stop())
        code = worker.run()
        if code:
            raise SystemExit(code)
