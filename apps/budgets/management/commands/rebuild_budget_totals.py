"""``manage.py rebuild_budget_totals [--workspace SLUG] [--apply]``: recompute running totals
from the ledger and report every difference (fix them with --apply)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.budgets.services import budget_totals_rebuild
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


class Command(BaseCommand):
    help = "Rebuild budget running totals from the ledger and report differences."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="Workspace slug (default: every active workspace).")
        parser.add_argument("--apply", action="store_true", help="Write the rebuilt totals.")

    def handle(self, *args: Any, **options: Any) -> None:
        workspaces = Workspace.objects.active().order_by("slug")
        if options["workspace"]:
            workspaces = workspaces.filter(slug=options["workspace"])
            if not workspaces.exists():
                raise CommandError(f"no active workspace {options['workspace']!r}")
        total = 0
        # Crosses workspaces on purpose: an operator's repair tool, one schema at a time.
        for workspace in workspaces:
            with workspace_schema(workspace):
                differences = budget_totals_rebuild(apply=options["apply"])
            total += len(differences)
            verb = "fixed" if options["apply"] else "found"
            self.stdout.write(f"{workspace.slug}: {verb} {len(differences)} difference(s)")
            for diff in differences:
                self.stdout.write("  " + json.dumps(diff.as_dict(), sort_keys=True))
        self.stdout.write(json.dumps({"differences": total, "applied": bool(options["apply"])}))
