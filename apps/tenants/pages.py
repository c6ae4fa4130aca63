"""Helpers for server-rendered workspace pages (routed under /w/<slug>/)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from .access import Principal


def request_principal(request: HttpRequest) -> Principal:
    principal = getattr(request, "principal", None)
    if principal is None:
        raise Http404("Not a workspace member.")
    return principal  # type: ignore[no-any-return]


def workspace_page(permission: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a page view: the member must hold ``permission`` in the active workspace."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request_principal(request).can(permission):
                raise PermissionDenied(permission)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
