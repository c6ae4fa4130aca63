"""Live push over the real ASGI stack and the real Redis channel layer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.approvals import services
from apps.approvals.gate import gate
from apps.approvals.models import ApprovalRequest
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.tenants.ws import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND

from .conftest import call_kwargs, decider_for

# DB work runs in database_sync_to_async threads (their own connections, real commits); the mark
# only sets up database access for the session fixtures, as in tests/tenants/test_ws.py.
pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]


def _cookie(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()), (b"origin", b"http://127.0.0.1")]


async def connect(user: Any, path: str = "/ws/w/acme/inbox/") -> tuple[bool, Any, WebsocketCommunicator]:
    from config.asgi import application

    headers = await sync_to_async(_cookie)(user)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return connected, code, communicator


def in_schema(workspace: Workspace, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    def call() -> Any:
        with workspace_schema(workspace):
            return func(*args, **kwargs)

    return database_sync_to_async(call)()


def open_request(**overrides: Any) -> ApprovalRequest:
    decision = gate(**call_kwargs(crew_id=uuid.uuid4(), **overrides))
    return ApprovalRequest.objects.get(pk=decision.approval_request_id)


def cleanup(mission_id: uuid.UUID) -> None:
    services.requests_cancel_for_mission(mission_id=mission_id)


async def test_a_new_request_reaches_a_connected_reviewer(acme: Workspace, reviewer: Any) -> None:
    connected, _, ws = await connect(reviewer)
    assert connected
    request = await in_schema(acme, open_request)
    try:
        message = await ws.receive_json_from(timeout=3)
        assert message["type"] == "request.created"
        assert message["request"]["id"] == str(request.pk)
        assert message["request"]["arguments"] == request.arguments
        assert f'id="req-{request.pk}"' in message["html"] and "Approve" in message["html"]
    finally:
        await ws.disconnect()
        await in_schema(acme, cleanup, request.mission_id)


async def test_only_reviewers_allowed_to_decide_receive_it(acme: Workspace, reviewer: Any, reviewer2: Any) -> None:
    _, _, starter = await connect(reviewer)
    _, _, other = await connect(reviewer2)
    request = await in_schema(acme, open_request, started_by_user_id=reviewer.pk)
    try:
        assert (await other.receive_json_from(timeout=3))["request"]["id"] == str(request.pk)
        assert await starter.receive_nothing(timeout=0.5)  # segregation of duties
    finally:
        await starter.disconnect()
        await other.disconnect()
        await in_schema(acme, cleanup, request.mission_id)


async def test_a_policy_naming_admins_reaches_admins_only(acme: Workspace, reviewer: Any, admin_user: Any) -> None:
    crew = uuid.uuid4()
    policy = await in_schema(
        acme,
        services.policy_create,
        fields={"name": f"admins {crew.hex[:8]}", "crew_ids": [str(crew)], "approver_roles": ["admin"]},
    )
    _, _, rev = await connect(reviewer)
    _, _, adm = await connect(admin_user)
    request = await in_schema(
        acme, lambda: ApprovalRequest.objects.get(pk=gate(**call_kwargs(crew_id=crew)).approval_request_id)
    )
    try:
        assert (await adm.receive_json_from(timeout=3))["request"]["id"] == str(request.pk)
        assert await rev.receive_nothing(timeout=0.5)
    finally:
        await rev.disconnect()
        await adm.disconnect()
        await in_schema(acme, cleanup, request.mission_id)
        await in_schema(acme, services.policy_delete, policy=policy)


async def test_a_decision_in_one_tab_updates_every_open_inbox(acme: Workspace, reviewer: Any, reviewer2: Any) -> None:
    _, _, tab1 = await connect(reviewer)
    _, _, tab2 = await connect(reviewer)
    _, _, colleague = await connect(reviewer2)
    request = await in_schema(acme, open_request)
    for ws in (tab1, tab2, colleague):
        assert (await ws.receive_json_from(timeout=3))["type"] == "request.created"
    await in_schema(
        acme,
        services.request_decide,
        request_id=request.pk,
        decider=decider_for(reviewer2, "reviewer"),
        decision="approve",
        comment="go",
    )
    try:
        for ws in (tab1, tab2, colleague):
            message = await ws.receive_json_from(timeout=3)
            assert message["type"] == "request.resolved"
            assert message["request"]["status"] == "approved" and message["request"]["decided_by"] == "acme-reviewer2"
            assert 'data-status="approved"' in message["html"] and "decide/" not in message["html"]
    finally:
        for ws in (tab1, tab2, colleague):
            await ws.disconnect()


async def test_ping_pong(reviewer: Any) -> None:
    _, _, ws = await connect(reviewer)
    await ws.send_json_to({"type": "ping", "t": 1})
    assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
    await ws.disconnect()


async def test_a_viewer_is_refused(viewer: Any) -> None:
    connected, code, _ = await connect(viewer)
    assert not connected and code == CLOSE_FORBIDDEN


async def test_another_workspaces_user_is_refused(outsider: Any) -> None:
    connected, code, _ = await connect(outsider)
    assert not connected and code == CLOSE_NOT_FOUND
