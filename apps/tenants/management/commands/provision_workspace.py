from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.errors import QuarterdeckError
from apps.tenants.services import workspace_provision


class Command(BaseCommand):
    help = "Provision a workspace: its schema, AGE graph, domain, owner and defaults, in one step."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", help="username or email of the first owner")
        parser.add_argument("--email-domain", action="append", default=[], dest="email_domains")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = None
        if options["owner"]:
            user_model = get_user_model()
            owner = (
                user_model.objects.filter(username=options["owner"]).first()
                or user_model.objects.filter(email__iexact=options["owner"]).first()
            )
            if owner is None:
                raise CommandError(f"no user {options['owner']!r}")
        try:
            provisioned = workspace_provision(
                name=options["name"], slug=options["slug"], owner=owner, email_domains=options["email_domains"]
            )
        except QuarterdeckError as exc:
            raise CommandError(f"{exc.message} {exc.details}") from exc
        self.stdout.write(self.style.SUCCESS(f"provisioned {provisioned.workspace.slug} in {provisioned.seconds:.2f}s"))
