"""A real OAuth 2.0 token endpoint on 127.0.0.1, for tests, the benchmark and the demo.

It behaves like the strict providers: every refresh rotates the refresh token, and a refresh
token that was used once is rejected with ``invalid_grant`` (so is everything after a
``revoke()``). Failures can be scripted::

    with OAuthTokenServer(client_id="c", client_secret="s") as server:
        refresh = server.issue_refresh_token()
        ... OAuthConnection(token_url=server.token_url, refresh_token=refresh, ...)
        server.fail_next(503, count=2)          # transient: two 503s, then normal service
        server.fail_next(400, error="invalid_grant")
        server.stall_next(seconds=3)            # a timeout for the client
        server.refreshes                        # successful refreshes so far

``/resource`` answers 200 for a live access token (``Authorization: Bearer ...``), 401 else.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote


@dataclass
class _Scripted:
    status: int
    error: str = ""
    stall_seconds: float = 0.0
    body: str | None = None


class OAuthTokenServer:
    def __init__(
        self,
        *,
        client_id: str = "quarterdeck-test-client",
        client_secret: str | None = None,
        expires_in: int = 3600,
        latency_seconds: float = 0.0,
    ):
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.expires_in = expires_in
        self.latency_seconds = latency_seconds
        self.refreshes = 0
        self.requests = 0
        self.rejected_reuse = 0
        self._live_refresh: set[str] = set()
        self._used_refresh: set[str] = set()
        self._live_access: set[str] = set()
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> OAuthTokenServer:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-devserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuthTokenServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def resource_url(self) -> str:
        return f"{self.base_url}/resource"

    # --- tokens and scripts ----------------------------------------------------------------
    def issue_refresh_token(self) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._live_refresh.add(token)
        return token

    def issue_access_token(self) -> str:
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._live_access.add(token)
        return token

    def revoke(self) -> None:
        """The user disconnected the app at the provider: every token stops working."""
        with self._lock:
            self._used_refresh |= self._live_refresh
            self._live_refresh.clear()
            self._live_access.clear()

    def fail_next(self, status: int, *, error: str = "", count: int = 1, body: str | None = None) -> None:
        with self._lock:
            self._script.extend(_Scripted(status, error, body=body) for _ in range(count))

    def stall_next(self, *, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._script.extend(_Scripted(0, stall_seconds=seconds) for _ in range(count))

    def is_live_access_token(self, token: str) -> bool:
        with self._lock:
            return token in self._live_access

    # --- the protocol ----------------------------------------------------------------------
    def _client_ok(self, form: dict[str, str], authorization: str) -> bool:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                return False
            user, _, password = decoded.partition(":")
            client_id, client_secret = unquote(user), unquote(password)
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(
            client_secret, self.client_secret
        )

    def _token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any], float]:
        with self._lock:
            self.requests += 1
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            if scripted.stall_seconds:
                return 0, {}, scripted.stall_seconds
            if scripted.body is not None:
                return scripted.status, {"__raw__": scripted.body}, 0.0
            return scripted.status, ({"error": scripted.error} if scripted.error else {}), 0.0
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}, 0.0
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed."}, 0.0
        presented = form.get("refresh_token", "")
        with self._lock:
            if presented in self._used_refresh:
                self.rejected_reuse += 1
                # Strict providers treat reuse as theft and revoke the whole grant.
                self._live_refresh.clear()
                return 400, {"error": "invalid_grant", "error_description": "Refresh token was already used."}, 0.0
            if presented not in self._live_refresh:
                return 400, {"error": "invalid_grant", "error_description": "Unknown refresh token."}, 0.0
            self._live_refresh.discard(presented)
            self._used_refresh.add(presented)
            new_refresh = "rt-" + secrets.token_urlsafe(24)
            new_access = "at-" + secrets.token_urlsafe(24)
            self._live_refresh.add(new_refresh)
            self._live_access.add(new_access)
            self.refreshes += 1
        return (
            200,
            {
                "access_token": new_access,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "refresh_token": new_refresh,
            },
            0.0,
        )


def _handler_for(server: OAuthTokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = payload.get("__raw__")
            body = raw.encode() if isinstance(raw, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            form = {key: values[0] for key, values in parse_qs(raw).items()}
            if self.path.split("?")[0] != "/token":
                self._send(404, {"error": "not_found"})
                return
            status, payload, stall = server._token(form, self.headers.get("Authorization", ""))
            if stall:
                time.sleep(stall)
                self.close_connection = True
                return
            self._send(status, payload)

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/resource":
                self._send(404, {"error": "not_found"})
                return
            token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if server.is_live_access_token(token):
                self._send(200, {"ok": True})
            else:
                self._send(401, {"error": "invalid_token"})

    return Handler
