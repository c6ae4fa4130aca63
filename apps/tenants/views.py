from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.permissions import ROLE_ACTIONS

from . import selectors
from .pages import request_principal, workspace_page
from .urlconf import workspace_reverse


@login_required
def workspace_chooser(request: HttpRequest) -> HttpResponse:
    workspaces = [
        (workspace, workspace_reverse(workspace.slug, "portal:home"))
        for workspace in selectors.workspace_list_for_user(user=request.user)
    ]
    return render(request, "portal/workspaces.html", {"workspaces": workspaces})


@workspace_page("workspace.view")
def workspace_home(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    members = selectors.membership_list(workspace=principal.workspace)
    return render(
        request,
        "portal/workspace_home.html",
        {
            "members": members,
            "can_manage_members": principal.can("members.manage"),
            "my_actions": sorted(ROLE_ACTIONS[principal.role]),
        },
    )
