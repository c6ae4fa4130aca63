"""Re-encrypt every encrypted value to the current key: ``manage.py vault_rotate``.

Resumable (run it again after an interruption), batched, journaled per batch. ``--status``
prints how many values each key version still protects, to know when an old key can go.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.tenants.models import Workspace
from apps.vault.crypto import KeyRing
from apps.vault.rotation import key_version_census, vault_rotate


class Command(BaseCommand):
    help = "Re-encrypt every encrypted value in every workspace under the current vault key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", action="append", default=[], help="Workspace slug (repeatable).")
        parser.add_argument("--batch-size", type=int, default=settings.VAULT_ROTATE_BATCH_SIZE)
        parser.add_argument("--skip-public", action="store_true", help="Leave shared (public-schema) tables alone.")
        parser.add_argument("--status", action="store_true", help="Only print the key-version census.")

    def handle(self, *args: Any, **options: Any) -> None:
        workspaces = list(Workspace.objects.order_by("schema_name"))
        if options["workspace"]:
            wanted = set(options["workspace"])
            workspaces = [w for w in workspaces if w.slug in wanted]
            missing = wanted - {w.slug for w in workspaces}
            if missing:
                raise CommandError(f"Unknown workspace(s): {', '.join(sorted(missing))}")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        ring = KeyRing.from_settings()
        if not options["status"]:
            self.stdout.write(f"Rotating to key version {ring.current} (minimum decrypt version {ring.minimum}).")
            reports = vault_rotate(
                workspaces=workspaces,
                include_public=not options["skip_public"],
                batch_size=options["batch_size"],
                progress=self.stdout.write,
            )
            rotated = sum(r.rotated for r in reports)
            failed = [f"{r.schema} {r.model}.{r.field} {pk}" for r in reports for pk in r.failed]
            self.stdout.write(f"Re-encrypted {rotated} value(s).")
            for line in failed:
                self.stderr.write(f"undecryptable, left as is: {line}")
        for workspace in workspaces:
            for column, counts in key_version_census(schema=workspace.schema_name).items():
                summary = ", ".join(f"v{v}: {n}" for v, n in counts.items()) or "empty"
                self.stdout.write(f"{workspace.schema_name} {column}: {summary}")
