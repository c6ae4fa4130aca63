from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.tenants.demo import DEMO_PASSWORD_NOTE, seed_demo
from apps.tenants.urlconf import workspace_reverse


class Command(BaseCommand):
    help = "Create (idempotently) the super-admin, the demo workspace, its people and demo data."

    def handle(self, *args: Any, **options: Any) -> None:
        workspace, logins, seconds = seed_demo()
        if seconds is not None:
            self.stdout.write(f"provisioned workspace '{workspace.slug}' in {seconds:.2f}s")
        self.stdout.write(self.style.SUCCESS(f"\n  Logins ({DEMO_PASSWORD_NOTE}):"))
        for login in logins:
            self.stdout.write(f"    {login.role:<12} {login.username:<8} / {login.password}")
        self.stdout.write(f"  Workspace portal: {workspace_reverse(workspace.slug, 'portal:home')}")
