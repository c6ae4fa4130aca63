from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.replay import replay_mission
from apps.core.errors import NotFound
from apps.tenants.access import workspace_schema

from ._workspaces import selected_workspaces


class Command(BaseCommand):
    help = "Reconstruct a mission (messages, tool calls, approvals, cost, final state) from the journal alone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("mission", help="mission id (UUID)")
        parser.add_argument("--workspace", required=True, help="workspace slug")
        parser.add_argument("--up-to", type=int, default=None, help="stop at this sequence number")

    def handle(self, *args: Any, **options: Any) -> None:
        [workspace] = selected_workspaces(options["workspace"])
        with workspace_schema(workspace):
            try:
                state = replay_mission(mission_id=options["mission"], up_to_seq=options["up_to"])
            except (NotFound, ValueError) as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(state.as_dict(), indent=2, sort_keys=True, default=str))
