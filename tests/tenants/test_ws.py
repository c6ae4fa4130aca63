from __future__ import annotations

from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import re_path

from apps.tenants.ws import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, WorkspaceConsumer, WorkspaceScopeMiddleware


def _current_schema() -> str:
    return str(connection.schema_name)


class SchemaEcho(WorkspaceConsumer):
    permission = "journal.read"

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"schema": await self.in_workspace(_current_schema), "role": self.workspace.role})


class ManagersOnly(WorkspaceConsumer):
    permission = "workspace.manage"

    async def connect(self) -> None:
        await self.accept()


application = AuthMiddlewareStack(
    WorkspaceScopeMiddleware(
        URLRouter(
            [
                re_path(r"^ws/w/[^/]+/echo/$", SchemaEcho.as_asgi()),
                re_path(r"^ws/w/[^/]+/manage/$", ManagersOnly.as_asgi()),
            ]
        )
    )
)


def _cookie(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode())]


@pytest.mark.django_db(transaction=False)
@pytest.mark.usefixtures("committed_db")
class TestWorkspaceWebSocket:
    async def _connect(self, user: Any, path: str) -> tuple[bool, Any, WebsocketCommunicator]:
        from asgiref.sync import sync_to_async

        headers = await sync_to_async(_cookie)(user)
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect()
        return connected, code, communicator

    async def test_member_runs_queries_in_the_workspace_schema(self, viewer: Any) -> None:
        connected, _, communicator = await self._connect(viewer, "/ws/w/acme/echo/")
        assert connected
        assert await communicator.receive_json_from() == {"schema": "w_acme", "role": "viewer"}
        await communicator.disconnect()

    async def test_non_member_is_refused_with_4404(self, outsider: Any) -> None:
        connected, code, _ = await self._connect(outsider, "/ws/w/acme/echo/")
        assert not connected and code == CLOSE_NOT_FOUND

    async def test_role_without_permission_is_refused_with_4403(self, viewer: Any) -> None:
        connected, code, _ = await self._connect(viewer, "/ws/w/acme/manage/")
        assert not connected and code == CLOSE_FORBIDDEN
