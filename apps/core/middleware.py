from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from .context import SYSTEM, new_request_id, set_actor, set_request_id
from .exceptions import is_api_request, json_error
from .text import PROBLEM, is_storable

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id (honouring a well-formed X-Request-ID) and a clean actor.

    Resetting the actor matters: contextvars may survive between requests on the same
    worker thread, and a stale actor would be written into the journal.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        set_request_id(request_id)
        set_actor(SYSTEM)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class UnstorableQueryMiddleware:
    """Answers 400 to a query string carrying text PostgreSQL cannot store (a NUL character),
    before any view passes it to a query and the database fails with a server error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        bad = sorted(
            {key for key, values in request.GET.lists() if not is_storable(key) or not all(map(is_storable, values))}
        )
        if not bad:
            return self.get_response(request)
        if is_api_request(request):
            return json_error("invalid", PROBLEM, 400, {key: [PROBLEM] for key in bad})
        return defaults.bad_request(request, Exception(PROBLEM))
