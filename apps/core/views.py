"""Error pages: the API answers in its envelope, the browser gets HTML."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from .exceptions import is_api_request, json_error


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return json_error("not_found", "Not found.", 404)
    return defaults.page_not_found(request, exception or Exception())


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return json_error("server_error", "An unexpected error occurred; it has been logged.", 500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return json_error("bad_request", "The request could not be understood.", 400)
    return defaults.bad_request(request, exception or Exception())


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return json_error("permission_denied", "You do not have permission to do this.", 403)
    return defaults.permission_denied(request, exception or Exception())
