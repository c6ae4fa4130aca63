"""Live push to open inboxes (Channels) and the runtime's wake-up (Postgres NOTIFY).

Both happen only once the change is committed: a reviewer must never see a request that
rolled back, and the runtime must never resume on a decision that did not happen. The push
runs from ``transaction.on_commit`` (robust: losing Redis loses a push, never the decision);
the wake-up is a ``pg_notify`` inside the transaction, which Postgres delivers at commit.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection as _connection
from django.db import transaction

from . import registry
from .models import ApprovalRequest
from .presenters import render_card, request_json

logger = logging.getLogger(__name__)

connection: Any = _connection  # django-tenants adds schema_name; the stubs do not know.

WAKE_CHANNEL = "quarterdeck_wake"
# Consumers receive group messages of this type in ``InboxConsumer.approvals_event``.
MESSAGE_TYPE = "approvals.event"

CREATED = "request.created"
UPDATED = "request.updated"
RESOLVED = "request.resolved"


def group_name(schema: str) -> str:
    return f"approvals.{schema}"


def eligibility(request: ApprovalRequest) -> dict[str, Any]:
    """What a consumer needs to decide, without a query, whether its reviewer may see this."""
    return {
        "roles": list(request.approver_roles),
        "user_ids": list(request.approver_user_ids),
        "segregation_of_duties": request.segregation_of_duties,
        "started_by_user_id": request.started_by_user_id,
    }


def may_receive(eligible: dict[str, Any], *, role: str, user_id: int | None) -> bool:
    named = role in eligible["roles"] or (user_id is not None and user_id in eligible["user_ids"])
    if not named:
        return False
    return not (eligible["segregation_of_duties"] and user_id is not None and user_id == eligible["started_by_user_id"])


def publish_on_commit(event: str, request: ApprovalRequest, *, slug: str) -> None:
    schema = str(connection.schema_name)
    transaction.on_commit(lambda: publish(event, request, schema=schema, slug=slug), robust=True)


def publish(event: str, request: ApprovalRequest, *, schema: str, slug: str) -> None:
    events = list(request.events.order_by("created_at", "id"))
    mission = registry.mission_info([request.mission_id]).get(request.mission_id)
    message = {
        "type": MESSAGE_TYPE,
        "event": event,
        "request": request_json(request),
        # Only reviewers who may decide receive it, so the card carries its buttons.
        "html": render_card(request, slug=slug, can_decide=True, events=events, mission=mission),
        "eligible": eligibility(request),
        "sent_at": time.time(),
    }
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group_name(schema), message)


def wake(request: ApprovalRequest) -> None:
    """Tell the runtime's workers (LISTEN quarterdeck_wake) that this request is resolved.
    Called inside the resolving transaction; Postgres delivers it only if that commits."""
    payload = json.dumps(
        {
            "schema": str(connection.schema_name),
            "mission_id": str(request.mission_id),
            "approval_request_id": str(request.pk),
            "tool_call_id": request.tool_call_id,
            "status": request.status,
            "mode": request.mode,
        }
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [WAKE_CHANNEL, payload])
