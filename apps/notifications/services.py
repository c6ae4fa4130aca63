"""Tell people about things: in-app, by email and by the workspace's webhook.

In-app notices are rows written in the caller's transaction (they roll back with it).
Email and webhook are sent only after the transaction commits, so nobody is told about a
change that did not happen; a failed delivery is logged and never undoes the change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.core.permissions import Role
from apps.tenants.models import Membership, Workspace

from .models import Notification

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0


def _recipients(workspace: Workspace, roles: Sequence[str], users: Iterable[Any]) -> list[Any]:
    unknown = set(roles) - set(Role.values)
    if unknown:
        raise ValidationFailed(f"Unknown roles: {', '.join(sorted(unknown))}.")
    by_id: dict[int, Any] = {}
    if roles:
        for membership in Membership.objects.filter(workspace=workspace, role__in=roles).select_related("user"):
            by_id[membership.user.pk] = membership.user
    for user in users:
        by_id[user.pk] = user
    return [user for user in by_id.values() if user.is_active]


def notify(
    *,
    workspace: Workspace,
    kind: str,
    subject: str,
    body: str = "",
    roles: Sequence[str] = (),
    users: Iterable[Any] = (),
    link: str = "",
    email: bool = True,
    webhook: bool = True,
) -> list[Notification]:
    """Notify the members holding ``roles`` plus ``users``. Call with the workspace's schema
    active (as inside any workspace request, worker step or ``workspace_schema`` block)."""
    if getattr(connection, "schema_name", None) != workspace.schema_name:
        raise RuntimeError("notify() must run with the workspace's schema active")
    recipients = _recipients(workspace, roles, users)
    with transaction.atomic():
        notices = Notification.objects.bulk_create(
            [Notification(user=user, kind=kind, subject=subject[:200], body=body, link=link) for user in recipients]
        )
    addresses = [user.email for user in recipients if user.email]
    if email and addresses:
        transaction.on_commit(lambda: _send_email(subject, body, link, addresses))
    if webhook and workspace.webhook_url:
        url = workspace.webhook_url
        transaction.on_commit(lambda: post_webhook(url, kind=kind, subject=subject, body=body, link=link))
    return notices


def _send_email(subject: str, body: str, link: str, addresses: list[str]) -> None:
    text = body + (f"\n\n{link}" if link else "")
    try:
        send_mail(f"[Quarterdeck] {subject}", text, settings.DEFAULT_FROM_EMAIL, addresses)
    except Exception:
        logger.exception("notification email to %d recipient(s) failed", len(addresses))


def post_webhook(url: str, *, kind: str, subject: str, body: str, link: str = "") -> bool:
    """POST a Slack-compatible message (``text`` plus ``blocks``); extra keys carry the data."""
    text = f"*{subject}*" + (f"\n{body}" if body else "") + (f"\n<{link}>" if link else "")
    payload = {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "quarterdeck": {"kind": kind, "subject": subject, "body": body, "link": link},
    }
    try:
        response = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError:
        logger.exception("webhook %s for %s failed", url, kind)
        return False
    return True


@transaction.atomic
def notification_mark_read(*, user: Any, ids: Sequence[int] | None = None) -> int:
    """Mark the user's notifications read (all unread ones when ``ids`` is None)."""
    queryset = Notification.objects.for_user(user).unread()
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return queryset.update(read_at=timezone.now())
