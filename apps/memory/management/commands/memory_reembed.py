from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.context import SYSTEM, acting_as
from apps.core.errors import QuarterdeckError
from apps.memory import services
from apps.memory.embedders import available
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


class Command(BaseCommand):
    help = (
        "Switch a workspace's memory to another embedder and embed every chunk again with it, "
        "showing progress. Resumable: run it again after an interruption."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("embedder", help=f"Embedder name (registered: {', '.join(available()) or 'see registry'})")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--workspace", help="Workspace slug")
        target.add_argument("--all-workspaces", action="store_true")
        parser.add_argument("--batch-size", type=int, default=128)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all_workspaces"]:
            workspaces = list(Workspace.objects.active())
        else:
            workspace = Workspace.objects.filter(slug=options["workspace"]).first()
            if workspace is None:
                raise CommandError(f"No workspace {options['workspace']!r}.")
            workspaces = [workspace]
        for workspace in workspaces:
            started = time.perf_counter()

            def progress(done: int, total: int, slug: str = workspace.slug, t0: float = started) -> None:
                rate = done / max(time.perf_counter() - t0, 1e-6)
                percent = 100 * done / total if total else 100
                self.stdout.write(f"[{slug}] {done}/{total} chunks ({percent:.0f}%, {rate:.0f}/s)")

            try:
                with workspace_schema(workspace), acting_as(SYSTEM):
                    result = services.memory_reembed(
                        embedder=options["embedder"], batch_size=options["batch_size"], progress=progress
                    )
            except QuarterdeckError as exc:
                raise CommandError(f"[{workspace.slug}] {exc.message}") from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"[{workspace.slug}] {result.from_embedder} -> {result.to_embedder} ({result.identity}): "
                    f"{result.chunks} chunks in {result.seconds:.1f}s"
                )
            )
