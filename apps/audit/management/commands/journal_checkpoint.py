from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from apps.audit.models import JournalCheckpoint
from apps.audit.services import journal_checkpoint, journal_checkpoint_all
from apps.tenants.access import workspace_schema

from ._workspaces import selected_workspaces

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Sign and export a journal checkpoint. Without --workspace, every active workspace whose "
        "journal moved; --loop repeats every --interval seconds (what the worker runs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="one workspace (checkpoint taken even if nothing changed)")
        parser.add_argument("--loop", action="store_true", help="keep checkpointing periodically")
        parser.add_argument("--interval", type=float, default=300.0, help="seconds between periodic runs")

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("workspace"):
            for workspace in selected_workspaces(options["workspace"]):
                with workspace_schema(workspace):
                    checkpoint = journal_checkpoint(reason=JournalCheckpoint.Reason.ON_DEMAND)
                self.stdout.write(
                    f"{workspace.slug}: " + (f"checkpoint at #{checkpoint.seq}" if checkpoint else "empty")
                )
            return
        while True:
            done = journal_checkpoint_all()
            for slug, seq in done.items():
                self.stdout.write(f"{slug}: " + (f"checkpoint at #{seq}" if seq else "unchanged"))
            if not options["loop"]:
                return
            close_old_connections()
            time.sleep(options["interval"])
