"""Base classes for workspace-scoped REST endpoints.

A view declares which action it needs (``read_permission``/``write_permission`` or a
per-action map); the base resolves the workspace (from the API key, or for a browser session
from the ``X-Workspace`` header and the user's membership), activates its schema, sets the
journal actor, and asks ``apps.core.permissions`` once. A caller outside the workspace gets
404; a member whose role lacks the action gets 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import generics, mixins, viewsets
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.core.context import set_actor
from apps.core.errors import NotFound

from .access import Principal, activate, principal_for_api_key, principal_for_user
from .models import ApiKey

WORKSPACE_HEADER = "X-Workspace"


class WorkspaceAutoSchema(AutoSchema):
    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if isinstance(self.view, WorkspaceScopedMixin):
            params.append(
                OpenApiParameter(
                    WORKSPACE_HEADER,
                    location=OpenApiParameter.HEADER,
                    required=False,
                    description="Workspace slug, for browser sessions. API keys imply their workspace.",
                )
            )
        return params


def resolve_principal(request: Request) -> Principal:
    if isinstance(request.auth, ApiKey):
        return principal_for_api_key(request.auth)
    slug = request.headers.get(WORKSPACE_HEADER, "").strip()
    if not slug:
        raise NotFound(f"Name the workspace in the {WORKSPACE_HEADER} header, or use an API key.")
    return principal_for_user(request.user, slug)


class WorkspaceScopedMixin:
    read_permission: str = "workspace.view"
    write_permission: str = "workspace.manage"
    # Overrides by viewset action ("list", "decide") or by HTTP method ("POST").
    action_permissions: Mapping[str, str] = {}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        principal = resolve_principal(request)
        activate(principal.workspace)
        request.principal = principal  # type: ignore[attr-defined]
        request.workspace = principal.workspace  # type: ignore[attr-defined]
        set_actor(principal.actor)
        principal.require(self.required_permission(request))

    def required_permission(self, request: Request) -> str:
        action = getattr(self, "action", None)
        if action and action in self.action_permissions:
            return self.action_permissions[action]
        if request.method and request.method in self.action_permissions:
            return self.action_permissions[request.method]
        return self.read_permission if request.method in SAFE_METHODS else self.write_permission

    @property
    def principal(self) -> Principal:
        return self.request.principal  # type: ignore[attr-defined,no-any-return]


class WorkspaceAPIView(WorkspaceScopedMixin, APIView):
    pass


class WorkspaceGenericAPIView(WorkspaceScopedMixin, generics.GenericAPIView):  # type: ignore[type-arg]
    pass


class WorkspaceGenericViewSet(WorkspaceScopedMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    pass


class WorkspaceReadOnlyViewSet(
    WorkspaceScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    pass
