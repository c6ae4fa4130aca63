"""The live inbox: every open inbox of a workspace joins one group; each connection forwards
only what its reviewer may decide (roles or named users, minus their own missions under
segregation of duties), so a request reaches exactly the people who can act on it."""

from __future__ import annotations

import time
from typing import Any

from apps.tenants.ws import WorkspaceConsumer

from .push import group_name, may_receive


class InboxConsumer(WorkspaceConsumer):
    permission = "approvals.decide"

    async def connect(self) -> None:
        self.group = group_name(self.workspace.schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        group = getattr(self, "group", None)
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Keep-alive and round-trip checks from the page.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "t": content.get("t"), "server_time": time.time()})

    async def approvals_event(self, message: dict[str, Any]) -> None:
        workspace = self.workspace
        if not may_receive(message["eligible"], role=workspace.role, user_id=workspace.user_id):
            return
        await self.send_json(
            {
                "type": message["event"],
                "request": message["request"],
                "html": message["html"],
                "sent_at": message.get("sent_at"),
            }
        )
