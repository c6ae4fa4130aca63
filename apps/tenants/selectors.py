from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import ApiKey, Membership, Workspace


def workspace_list_for_user(*, user: Any) -> QuerySet[Workspace]:
    return Workspace.objects.active().restrict(user, "workspace.view").order_by("name")


def membership_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.for_workspace(workspace).select_related("user").order_by("user__username")


def membership_get(*, workspace: Workspace, pk: int) -> Membership:
    return membership_list(workspace=workspace).get(pk=pk)


def api_key_list(*, workspace: Workspace) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(workspace=workspace).select_related("created_by")
