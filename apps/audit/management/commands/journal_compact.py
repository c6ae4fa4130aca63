from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.audit.services import journal_compact
from apps.tenants.access import workspace_schema

from ._workspaces import selected_workspaces


class Command(BaseCommand):
    help = "Apply each workspace's retention policy: replace expired entries by signed summaries."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="workspace slug (default: every active workspace)")

    def handle(self, *args: Any, **options: Any) -> None:
        for workspace in selected_workspaces(options.get("workspace")):
            with workspace_schema(workspace):
                done = journal_compact()
            removed = sum(c.removed for c in done)
            summaries = ", ".join(f"#{c.summary_seq}" for c in done) or "none"
            self.stdout.write(f"{workspace.slug}: removed {removed} entries; summaries {summaries}")
