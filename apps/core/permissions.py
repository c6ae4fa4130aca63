"""Roles and the actions they allow: the single source every API, page and admin path asks.

Actions are strings named ``<area>.<verb>``. Adding an action means adding it here, to the
roles that may perform it; nothing else decides who may do what.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


# What every member may do: look.
_READ = frozenset(
    {
        "workspace.view",
        "members.view",
        "journal.read",
        "budgets.view",
        "llm.view",
        "approvals.view",
        "missions.view",
        "crews.view",
        "memory.read",
        "secrets.view",
        "evals.view",
    }
)
_OPERATE = frozenset(
    {
        "missions.run",
        "missions.control",
        "memory.write",
        "evals.run",
    }
)
_REVIEW = frozenset({"approvals.decide"})
_ADMINISTER = frozenset(
    {
        "workspace.manage",
        "members.manage",
        "apikeys.manage",
        "budgets.manage",
        "llm.manage",
        "policies.manage",
        "crews.manage",
        "secrets.manage",
        "journal.manage",
        "memory.manage",
        "evals.manage",
    }
)
_OWN = frozenset({"owners.manage"})

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: _READ,
    Role.OPERATOR: _READ | _OPERATE,
    Role.REVIEWER: _READ | _REVIEW,
    Role.ADMIN: _READ | _OPERATE | _REVIEW | _ADMINISTER,
    Role.OWNER: _READ | _OPERATE | _REVIEW | _ADMINISTER | _OWN,
}

ALL_ACTIONS: frozenset[str] = frozenset().union(*ROLE_ACTIONS.values())


def role_allows(role: str | None, action: str) -> bool:
    if action not in ALL_ACTIONS:
        # A typo in an action name must not silently deny (or allow) forever.
        raise ValueError(f"unknown action {action!r}; declare it in apps.core.permissions")
    if role is None:
        return False
    return action in ROLE_ACTIONS.get(role, frozenset())


def roles_allowing(action: str) -> list[str]:
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]
