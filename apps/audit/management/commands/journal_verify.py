from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.audit.verify import journal_verify
from apps.tenants.access import workspace_schema

from ._workspaces import selected_workspaces


class Command(BaseCommand):
    help = "Verify the journal's hash chain and signed checkpoints; name the first bad sequence number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="workspace slug (default: every active workspace)")
        parser.add_argument("--json", action="store_true", help="print one JSON object per workspace")
        parser.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            help="processes recomputing the hashes of a long journal (default: one per CPU)",
        )
        parser.add_argument(
            "--no-exported", action="store_true", help="ignore the checkpoint files outside the database"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        failed = False
        for workspace in selected_workspaces(options.get("workspace")):
            with workspace_schema(workspace):
                result = journal_verify(use_exported=not options["no_exported"], jobs=max(1, options["jobs"]))
            if options["json"]:
                self.stdout.write(json.dumps({"workspace": workspace.slug, **result.as_dict()}))
            elif result.ok:
                self.stdout.write(
                    f"{workspace.slug}: OK, {result.entries} entries up to #{result.head_seq}, "
                    f"{result.checkpoints} checkpoints, {result.compacted_runs} compacted runs, "
                    f"{result.seconds:.2f}s"
                )
            if not result.ok:
                failed = True
                problem = result.first_problem
                assert problem is not None
                self.stderr.write(f"{workspace.slug}: FAILED, first bad sequence: {problem.seq} ({problem.reason})")
                for other in sorted(result.problems, key=lambda p: p.seq)[1:10]:
                    self.stderr.write(f"  also #{other.seq}: {other.reason}")
        if failed:
            sys.exit(1)
