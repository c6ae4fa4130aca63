from __future__ import annotations

import re
from collections.abc import Callable

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse

from apps.core.context import set_actor
from apps.core.errors import NotFound

from .access import Principal, activate, deactivate, member_role
from .models import Workspace
from .urlconf import workspace_urlconf

_WORKSPACE_PATH = re.compile(r"^/w/(?P<slug>[a-z][a-z0-9-]{1,39})(?P<rest>/.*)?$")


class WorkspaceMiddleware:
    """Resolves ``/w/<slug>/`` routes to a workspace and activates its schema.

    Every request starts on the public schema: a thread's connection keeps its search_path
    between requests, and a request must never inherit the previous one's workspace.
    Non-members get 404 rather than 403, so workspace names do not leak.
    Super-admins reach a workspace's admin site without membership: that is the one
    explicit cross-workspace path.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        deactivate()
        try:
            match = _WORKSPACE_PATH.match(request.path_info)
            if match is not None:
                redirect = self._enter(request, match["slug"], match["rest"] or "/")
                if redirect is not None:
                    return redirect
            return self.get_response(request)
        finally:
            deactivate()

    def _enter(self, request: HttpRequest, slug: str, rest: str) -> HttpResponse | None:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        workspace = Workspace.objects.filter(slug=slug, is_active=True).first()
        if workspace is None:
            raise Http404("No such workspace.")
        role = member_role(user, workspace)
        if role is None:
            if not (user.is_superuser and rest.startswith("/admin/")):
                raise Http404("No such workspace.")
        else:
            principal = Principal(workspace=workspace, role=role, user=user)
            request.principal = principal  # type: ignore[attr-defined]
            set_actor(principal.actor)
        request.workspace = workspace  # type: ignore[attr-defined]
        request.workspace_role = role  # type: ignore[attr-defined]
        request.urlconf = workspace_urlconf(slug)  # type: ignore[assignment]
        activate(workspace)
        return None


__all__ = ["NotFound", "WorkspaceMiddleware"]
