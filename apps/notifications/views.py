from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.tenants.pages import request_principal, workspace_page

from . import selectors, services


@workspace_page("workspace.view")
def notification_list(request: HttpRequest) -> HttpResponse:
    notices = selectors.notification_list(user=request.user)[:200]
    return render(request, "notifications/list.html", {"notices": notices})


@require_POST
@workspace_page("workspace.view")
def notification_mark_all_read(request: HttpRequest) -> HttpResponse:
    services.notification_mark_read(user=request_principal(request).user)
    return redirect("notifications:list")
