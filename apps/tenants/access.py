"""The one permission check. Pages, the API, WebSockets and the admin all come through here.

A *principal* is whoever acts in a workspace: a member (through a browser session) or an
API key. Its role decides what it may do, via ``apps.core.permissions``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection as _default_connection
from django_tenants.utils import get_public_schema_name

from apps.core.context import Actor, user_actor
from apps.core.errors import NotFound, PermissionDenied
from apps.core.permissions import role_allows

from .models import ApiKey, Membership, Workspace

# django-tenants adds set_tenant/set_schema_to_public to the connection; the stubs do not know.
connection: Any = _default_connection


@dataclass(frozen=True)
class Principal:
    workspace: Workspace
    role: str
    user: Any = None  # a user model instance for members
    api_key: ApiKey | None = None

    @property
    def actor(self) -> Actor:
        if self.api_key is not None:
            return Actor(kind="api_key", id=str(self.api_key.pk), label=f"api key {self.api_key.name}")
        return user_actor(self.user)

    def can(self, action: str) -> bool:
        return role_allows(self.role, action)

    def require(self, action: str) -> None:
        if not self.can(action):
            raise PermissionDenied(f"Your role ({self.role}) does not allow {action}.", details={"action": action})


def member_role(user: Any, workspace: Workspace) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()


def principal_for_user(user: Any, slug: str) -> Principal:
    """The member's principal in workspace ``slug``; 404 when not a member (no existence leak)."""
    if not getattr(user, "is_authenticated", False):
        raise NotFound()
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__slug=slug, workspace__is_active=True)
        .first()
    )
    if membership is None:
        raise NotFound()
    return Principal(workspace=membership.workspace, role=membership.role, user=user)


def principal_for_api_key(api_key: ApiKey) -> Principal:
    if not api_key.workspace.is_active:
        raise NotFound()
    return Principal(workspace=api_key.workspace, role=api_key.role, api_key=api_key)


def activate(workspace: Workspace) -> None:
    """Point this connection at the workspace's schema (and public, for shared tables)."""
    connection.set_tenant(workspace)


def deactivate() -> None:
    connection.set_schema_to_public()


@contextlib.contextmanager
def workspace_schema(workspace: Workspace) -> Iterator[Workspace]:
    """Run a block in ``workspace``'s schema, restoring whatever was active before."""
    previous = getattr(connection, "tenant", None)
    previous_schema = getattr(connection, "schema_name", get_public_schema_name())
    connection.set_tenant(workspace)
    try:
        yield workspace
    finally:
        if previous is not None and previous_schema != get_public_schema_name():
            connection.set_tenant(previous)
        else:
            connection.set_schema_to_public()
