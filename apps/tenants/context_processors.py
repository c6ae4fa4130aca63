from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.core.permissions import ROLE_ACTIONS


def workspace(request: HttpRequest) -> dict[str, Any]:
    role = getattr(request, "workspace_role", None)
    return {
        # Templates ask `{% if "approvals.decide" in workspace_actions %}`: the same table as the API.
        "workspace_actions": ROLE_ACTIONS.get(role, frozenset()) if role else frozenset(),
        "workspace": getattr(request, "workspace", None),
        "workspace_role": getattr(request, "workspace_role", None),
        "principal": getattr(request, "principal", None),
    }
