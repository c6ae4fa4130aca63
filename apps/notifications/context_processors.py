from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .selectors import unread_count


def unread_notifications(request: HttpRequest) -> dict[str, Any]:
    # Only inside a workspace page, where the workspace's schema is active.
    if getattr(request, "principal", None) is None:
        return {}
    return {"unread_notifications": unread_count(user=request.user)}
