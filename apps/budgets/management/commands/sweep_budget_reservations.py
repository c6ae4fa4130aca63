"""``manage.py sweep_budget_reservations [--older-than SECONDS]``: settle reservations whose
process died, at their worst case (the provider may have billed the call)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.budgets.services import reservations_settle_stale
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


class Command(BaseCommand):
    help = "Settle stale budget reservations at their worst case."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, default=settings.BUDGETS_STALE_RESERVATION_SECONDS)
        parser.add_argument("--lookback-hours", type=int, default=48, help="How far back to look for stale ones.")

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = timedelta(seconds=options["older_than"])
        # Crosses workspaces on purpose: the sweep visits each schema in turn.
        for workspace in Workspace.objects.active().order_by("slug"):
            with workspace_schema(workspace):
                count = reservations_settle_stale(
                    older_than=older_than, lookback=timedelta(hours=options["lookback_hours"])
                )
            if count:
                self.stdout.write(f"{workspace.slug}: settled {count} stale reservation(s)")
