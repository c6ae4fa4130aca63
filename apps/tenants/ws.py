"""The workspace on the WebSocket path.

django-tenants only activates a schema in its HTTP middleware; WebSocket scopes and the
threads of ``database_sync_to_async`` would fall back to the public schema. So the workspace
is resolved here, once per connection, into ``scope["workspace"]``, and consumers run each
database call inside ``schema_context`` (see ``WorkspaceConsumer.in_workspace``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import schema_context

from apps.core.context import Actor, acting_as, user_actor
from apps.core.permissions import role_allows

from .models import Membership

_WS_PATH = re.compile(r"^/ws/w/(?P<slug>[a-z][a-z0-9-]{1,39})/")

T = TypeVar("T")

CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403


@dataclass(frozen=True)
class WorkspaceScope:
    id: int
    slug: str
    schema_name: str
    role: str
    user_id: int
    username: str

    @property
    def actor(self) -> Actor:
        return Actor(kind="user", id=str(self.user_id), label=self.username)

    def can(self, action: str) -> bool:
        return role_allows(self.role, action)


@database_sync_to_async
def _resolve(user: Any, slug: str) -> WorkspaceScope | None:
    if not getattr(user, "is_authenticated", False):
        return None
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__slug=slug, workspace__is_active=True)
        .first()
    )
    if membership is None:
        return None
    ws = membership.workspace
    return WorkspaceScope(
        id=ws.pk,
        slug=ws.slug,
        schema_name=ws.schema_name,
        role=membership.role,
        user_id=user.pk,
        username=user_actor(user).label,
    )


class WorkspaceScopeMiddleware:
    def __init__(self, inner: Any):
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            match = _WS_PATH.match(scope.get("path", ""))
            workspace = await _resolve(scope.get("user"), match["slug"]) if match else None
            scope = {**scope, "workspace": workspace}
        return await self.inner(scope, receive, send)


class WorkspaceConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Base consumer: refuses non-members (4404) and roles without ``permission`` (4403)."""

    permission: str = "workspace.view"

    @property
    def workspace(self) -> WorkspaceScope:
        return self.scope["workspace"]  # type: ignore[no-any-return]

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        workspace = self.scope.get("workspace")
        if workspace is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not workspace.can(self.permission):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await super().websocket_connect(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Frames are JSON text. Anything else gets an error message and the socket stays
        open (Channels' default raises, which drops the connection and logs a server error)."""
        if text_data is None:
            await self.send_json({"type": "error", "message": "Send JSON in text frames."})
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_json({"type": "error", "message": "That frame is not valid JSON."})
            return
        await self.receive_json(content, **kwargs)

    async def in_workspace(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` in a DB thread with this workspace's schema and actor active."""
        schema = self.workspace.schema_name
        actor = self.workspace.actor

        def call() -> T:
            with schema_context(schema), acting_as(actor):
                return func(*args, **kwargs)

        return await database_sync_to_async(call)()  # type: ignore[no-any-return]
