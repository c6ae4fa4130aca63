"""The demo workspace and its people. Other apps add their demo data through the registry
in ``register_demo`` (crews, budgets, approval policies...), so ``seed_demo`` stays one
command and each app owns its own demo rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from apps.core.permissions import Role

from .access import workspace_schema
from .models import Membership, Workspace
from .services import workspace_provision

DEMO_SLUG = "demo"
DEMO_PASSWORD_NOTE = "demo logins; change them before exposing this instance"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


DEMO_PEOPLE = [
    DemoLogin("admin", "quarterdeck-admin", "super-admin"),
    DemoLogin("olivia", "quarterdeck-owner", Role.OWNER),
    DemoLogin("rita", "quarterdeck-reviewer", Role.REVIEWER),
    DemoLogin("oscar", "quarterdeck-operator", Role.OPERATOR),
]

DemoSeeder = Callable[[Workspace, dict[str, Any]], None]
_seeders: dict[str, DemoSeeder] = {}


def register_demo(name: str, seeder: DemoSeeder) -> None:
    """Register ``seeder(workspace, users)``; it runs in the demo schema and must be idempotent."""
    _seeders[name] = seeder


def _user(login: DemoLogin, *, superuser: bool) -> Any:
    user_model = get_user_model()
    user = user_model.objects.filter(username=login.username).first()
    if user is None:
        email = f"{login.username}@demo.quarterdeck.local"
        if superuser:
            user = user_model.objects.create_superuser(login.username, email, login.password)
        else:
            user = user_model.objects.create_user(login.username, email, login.password)
    return user


def seed_demo() -> tuple[Workspace, list[DemoLogin], float | None]:
    users = {login.username: _user(login, superuser=login.role == "super-admin") for login in DEMO_PEOPLE}
    workspace = Workspace.objects.filter(slug=DEMO_SLUG).first()
    seconds = None
    if workspace is None:
        provisioned = workspace_provision(
            name="Demo Support Co",
            slug=DEMO_SLUG,
            owner=users["olivia"],
            created_by=users["admin"],
            email_domains=["demo.quarterdeck.local"],
        )
        workspace, seconds = provisioned.workspace, provisioned.seconds
    with transaction.atomic():
        for login in DEMO_PEOPLE:
            if login.role in Role.values:
                Membership.objects.get_or_create(
                    user=users[login.username], workspace=workspace, defaults={"role": login.role}
                )
    with workspace_schema(workspace):
        for _name, seeder in sorted(_seeders.items()):
            seeder(workspace, users)
    return workspace, DEMO_PEOPLE, seconds
