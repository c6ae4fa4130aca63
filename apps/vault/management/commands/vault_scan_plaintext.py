"""Scan raw tables (journal included) for plaintext secrets: ``manage.py vault_scan_plaintext``.

By default every workspace is scanned for its own decrypted values (secrets, OAuth client
secrets and tokens, any encrypted field), in its schema and in the public schema. Extra
needles can come from a file (one per line), never from the command line, where they would
land in shell history and process listings. The last line is JSON; exit status 1 on a hit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.vault.scan import known_plaintexts, scan_plaintext


class Command(BaseCommand):
    help = "Look for plaintext secret values in every table of the workspace schemas and public."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", action="append", default=[], help="Workspace slug (repeatable).")
        parser.add_argument("--needles-file", type=Path, help="Extra plaintexts to look for, one per line.")
        parser.add_argument("--no-public", action="store_true", help="Do not scan the public schema.")
        parser.add_argument("--fail", action="store_true", help="Exit with status 1 when anything is found.")

    def handle(self, *args: Any, **options: Any) -> None:
        workspaces = list(Workspace.objects.order_by("schema_name"))
        if options["workspace"]:
            workspaces = [w for w in workspaces if w.slug in set(options["workspace"])]
            if not workspaces:
                raise CommandError("No such workspace.")
        extra: list[str] = []
        if options["needles_file"]:
            extra = [line.rstrip("\n") for line in options["needles_file"].read_text().splitlines() if line.strip()]
        hits = []
        needle_count = 0
        for workspace in workspaces:
            with workspace_schema(workspace):
                needles = [*known_plaintexts(), *extra]
            needle_count += len(needles)
            schemas = [workspace.schema_name, *([] if options["no_public"] else ["public"])]
            for hit in scan_plaintext(needles=needles, schemas=schemas):
                hits.append(hit.as_dict())
                self.stdout.write(f"plaintext found: {hit.schema}.{hit.table}.{hit.column} ({hit.rows} row(s))")
        result = {
            "plaintext_hits": sum(h["rows"] for h in hits),
            "needles": needle_count,
            "schemas": [w.schema_name for w in workspaces],
            "hits": hits,
        }
        self.stdout.write(json.dumps(result))
        if hits and options["fail"]:
            sys.exit(1)
