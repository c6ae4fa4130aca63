"""Call an HTTP API on a host the crew allows (``Crew.http_allowlist``), nothing else.

Redirects are not followed (a redirect could leave the allowlist), proxies from the
environment are ignored, and the tool call id travels as ``Idempotency-Key`` so an API that
supports it drops a repeated call.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from .base import ToolContext, ToolError

NAME = "http_request"
DESCRIPTION = (
    "Make an HTTP request to an API on the crew's allowlist. Returns the status, the content "
    "type and the body (JSON parsed when possible, text truncated to 20,000 characters)."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
        "url": {"type": "string", "pattern": "^https?://", "maxLength": 2000},
        "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 2000}},
        "json": {"description": "A JSON body."},
        "credential": {
            "type": "string",
            "maxLength": 100,
            "description": "Name of a workspace secret sent as a bearer token.",
        },
    },
    "required": ["method", "url"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = True
MAX_BODY_CHARS = 20_000
_FORBIDDEN_HEADERS = frozenset({"host", "authorization", "cookie", "proxy-authorization"})


def credentials_for(args: dict[str, Any]) -> list[str]:
    return [args["credential"]] if args.get("credential") else []


def host_allowed(url: str, allowlist: list[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for entry in allowlist:
        entry = str(entry).strip().lower()
        if entry == host or entry == f"{host}:{port}":
            return True
    return False


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    url = args["url"]
    if not host_allowed(url, list(ctx.crew.http_allowlist)):
        raise ToolError(f"{urlsplit(url).netloc} is not on this crew's allowlist; the request was not sent.")
    headers = {k: v for k, v in (args.get("headers") or {}).items() if k.lower() not in _FORBIDDEN_HEADERS}
    headers["Idempotency-Key"] = f"{ctx.mission.pk}:{ctx.tool_call_id}"
    if args.get("credential"):
        token = ctx.credentials.get(args["credential"])
        if not token:
            raise ToolError(f"The credential {args['credential']!r} is not available to this crew.")
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"headers": headers}
    if "json" in args:
        kwargs["json"] = args["json"]
    try:
        with httpx.Client(timeout=settings.CREWS_HTTP_TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
            response = client.request(args["method"], url, **kwargs)
    except httpx.HTTPError as exc:
        raise ToolError(f"The request failed: {type(exc).__name__}: {exc}") from exc
    text = response.text
    result: dict[str, Any] = {
        "status": response.status_code,
        "content_type": response.headers.get("content-type", ""),
    }
    if "json" in result["content_type"]:
        try:
            result["json"] = json.loads(text)
        except ValueError:
            result["body"] = text[:MAX_BODY_CHARS]
    else:
        result["body"] = text[:MAX_BODY_CHARS]
        result["truncated"] = len(text) > MAX_BODY_CHARS
    if response.is_redirect:
        result["location"] = response.headers.get("location", "")
    return result
