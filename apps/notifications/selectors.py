from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import Notification


def notification_list(*, user: Any, unread_only: bool = False) -> QuerySet[Notification]:
    queryset = Notification.objects.for_user(user)
    return queryset.unread() if unread_only else queryset


def unread_count(*, user: Any) -> int:
    return Notification.objects.for_user(user).unread().count()
