"""OAuth access tokens on demand, refreshed inline and exactly once under concurrency.

``get_access_token(connection)`` returns a valid access token. When the stored one is
expired or about to expire it refreshes it right there, holding a Postgres advisory lock
keyed by the connection for the length of the refresh transaction. Providers rotate refresh
tokens and reject a reused one, so two runs refreshing at once would leave one of them with
a dead token (and could get the grant revoked); with the lock the second run waits, re-reads
the row, finds the fresh token and returns it without calling the provider.

Failures are classified:
- permanent (``invalid_grant``, revoked or invalid client, any other 4xx): the connection is
  marked broken, ``oauth.failed`` is journaled, the workspace owners are notified, and
  ``OAuthConnectionBroken`` is raised now and on every later call until someone reconnects;
- transient (5xx, 408/429, timeouts, connection errors, malformed answers): retried with
  exponential backoff; if all attempts fail the connection stays healthy, ``oauth.failed``
  is journaled and ``OAuthTemporarilyUnavailable`` raised (or, when the stored token has
  not actually expired yet, that token is returned).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import connection as _connection
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.audit.services import journal_append
from apps.core.errors import QuarterdeckError
from apps.core.permissions import Role

from .models import ConnectionState, OAuthConnection, TokenAuthMethod
from .scrub import Scrubber

logger = logging.getLogger(__name__)
connection: Any = _connection  # django-tenants adds schema_name/tenant; the stubs do not know

PERMANENT = "permanent"
TRANSIENT = "transient"
_ADVISORY_NAMESPACE = b"quarterdeck.vault.oauth:"


class OAuthError(QuarterdeckError):
    code = "oauth_error"
    status_code = 502


class OAuthConnectionBroken(OAuthError):
    """The provider refused the refresh for good; a person must reconnect the account."""

    code = "oauth_connection_broken"
    status_code = 409


class OAuthTemporarilyUnavailable(OAuthError):
    """The provider could not be reached or failed; retry later. The connection is healthy."""

    code = "oauth_unavailable"
    status_code = 503


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def advisory_lock_key(schema: str, connection_id: uuid.UUID | str) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock. Advisory locks are database-wide, so the
    key includes the schema: two workspaces never wait on each other."""
    digest = hashlib.blake2b(_ADVISORY_NAMESPACE + f"{schema}:{connection_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _resolve(target: OAuthConnection | uuid.UUID | str) -> OAuthConnection:
    if isinstance(target, OAuthConnection):
        return OAuthConnection.objects.get(pk=target.pk)
    if isinstance(target, uuid.UUID):
        return OAuthConnection.objects.get(pk=target)
    try:
        return OAuthConnection.objects.get(pk=uuid.UUID(str(target)))
    except ValueError:
        return OAuthConnection.objects.get(provider=target)


def _fresh_enough(conn: OAuthConnection, now: datetime, skew: timedelta) -> bool:
    return conn.access_token is not None and conn.expires_at is not None and conn.expires_at - skew > now


def _broken_error(conn: OAuthConnection) -> OAuthConnectionBroken:
    return OAuthConnectionBroken(
        f"The {conn.provider} connection is broken ({conn.last_error_code or 'refresh refused'}); "
        "a workspace owner must reconnect it.",
        details={"provider": conn.provider, "connection_id": str(conn.pk), "error": conn.last_error_code},
    )


@sensitive_variables()
def get_access_token(target: OAuthConnection | uuid.UUID | str, *, min_validity_seconds: int | None = None) -> str:
    """A valid access token for the connection (an instance, its id, or its provider slug).

    Call with the workspace's schema active, preferably outside a transaction of yours: the
    refresh lock is transaction-scoped, so inside one it is held (and the provider's answer
    stays uncommitted) until your transaction ends. Raises ``OAuthConnectionBroken`` or
    ``OAuthTemporarilyUnavailable``; ``OAuthConnection.DoesNotExist`` for an unknown one.
    """
    skew = timedelta(
        seconds=min_validity_seconds
        if min_validity_seconds is not None
        else int(_setting("VAULT_OAUTH_REFRESH_SKEW_SECONDS", 60))
    )
    conn = _resolve(target)
    if conn.is_broken:
        raise _broken_error(conn)
    if _fresh_enough(conn, timezone.now(), skew):
        assert conn.access_token is not None
        return conn.access_token.reveal()
    return _refresh(conn.pk, skew)


@dataclass
class _Outcome:
    token: str | None = None
    error: OAuthError | None = None


@sensitive_variables()
def _refresh(connection_id: uuid.UUID, skew: timedelta) -> str:
    schema = str(getattr(connection, "schema_name", "public"))
    outcome = _Outcome()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Serialises refreshes of this connection across threads, processes and hosts.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_lock_key(schema, connection_id)])
        # Re-read after the lock: whoever held it may have refreshed already (READ COMMITTED
        # gives this statement a snapshot taken after their commit).
        conn = OAuthConnection.objects.get(pk=connection_id)
        now = timezone.now()
        if conn.is_broken:
            outcome.error = _broken_error(conn)
        elif _fresh_enough(conn, now, skew):
            assert conn.access_token is not None
            outcome.token = conn.access_token.reveal()
        else:
            _refresh_locked(conn, now, outcome)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.token is not None
    return outcome.token


@dataclass
class _Attempt:
    ok: bool
    failure_class: str = ""
    error: str = ""
    description: str = ""
    status_code: int | None = None
    retry_after: float | None = None
    data: dict[str, Any] | None = None


@sensitive_variables()
def _refresh_locked(conn: OAuthConnection, now: datetime, outcome: _Outcome) -> None:
    if conn.refresh_token is None:
        _mark_broken(conn, _Attempt(False, PERMANENT, "no_refresh_token", "No refresh token is stored."), 0)
        outcome.error = _broken_error(conn)
        return
    refresh_token = conn.refresh_token.reveal()
    client_secret = conn.client_secret.reveal() if conn.client_secret is not None else ""
    scrubber = Scrubber([refresh_token, client_secret])
    attempts_allowed = max(1, int(_setting("VAULT_OAUTH_ATTEMPTS", 3)))
    backoff = int(_setting("VAULT_OAUTH_BACKOFF_MS", 500)) / 1000
    attempt = _Attempt(False)
    for number in range(1, attempts_allowed + 1):
        attempt = _call_token_endpoint(conn, refresh_token, client_secret)
        if attempt.ok or attempt.failure_class == PERMANENT:
            break
        if number < attempts_allowed:
            delay = backoff * (2 ** (number - 1)) * (1 + random.random() / 2)
            if attempt.retry_after is not None:
                delay = max(delay, attempt.retry_after)
            time.sleep(min(delay, int(_setting("VAULT_OAUTH_MAX_BACKOFF_MS", 10_000)) / 1000))
    attempt.error = scrubber.scrub(attempt.error)[:100]
    attempt.description = scrubber.scrub(attempt.description)[:400]

    if attempt.ok:
        assert attempt.data is not None
        outcome.token = _store_tokens(conn, attempt.data, now, number)
        return
    if attempt.failure_class == PERMANENT:
        _mark_broken(conn, attempt, number)
        outcome.error = _broken_error(conn)
        return
    _record_transient(conn, attempt, number)
    if conn.access_token is not None and conn.expires_at is not None and conn.expires_at > now:
        # Refreshing early failed, but the token we hold is still good: use it.
        outcome.token = conn.access_token.reveal()
        return
    outcome.error = OAuthTemporarilyUnavailable(
        f"The {conn.provider} token endpoint is unavailable ({attempt.error}); try again later.",
        details={"provider": conn.provider, "connection_id": str(conn.pk), "error": attempt.error},
    )


@sensitive_variables()
def _call_token_endpoint(conn: OAuthConnection, refresh_token: str, client_secret: str) -> _Attempt:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    auth: tuple[str, str] | None = None
    if conn.auth_method == TokenAuthMethod.CLIENT_SECRET_BASIC:
        auth = (conn.client_id, client_secret)
    else:
        form["client_id"] = conn.client_id
        form["client_secret"] = client_secret
    timeout = float(_setting("VAULT_OAUTH_TIMEOUT_SECONDS", 10))
    try:
        response = httpx.post(
            conn.token_url, data=form, auth=auth, timeout=timeout, headers={"Accept": "application/json"}
        )
    except httpx.TimeoutException:
        return _Attempt(False, TRANSIENT, "timeout", "The token endpoint did not answer in time.")
    except httpx.HTTPError as exc:
        return _Attempt(
            False, TRANSIENT, "connection_error", f"Could not reach the token endpoint ({type(exc).__name__})."
        )

    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if status == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str) and body["access_token"]:
        return _Attempt(True, status_code=status, data=body)
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    if status == 200:
        return _Attempt(
            False, TRANSIENT, "invalid_response", "The token endpoint answered without an access token.", status
        )
    if status in (408, 429) or status >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return _Attempt(False, TRANSIENT, error or f"http_{status}", description, status, retry_after)
    # invalid_grant (expired, revoked or reused refresh token), invalid_client, and any other
    # client error: asking again will not help.
    return _Attempt(False, PERMANENT, error or f"http_{status}", description, status)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@sensitive_variables()
def _store_tokens(conn: OAuthConnection, data: dict[str, Any], now: datetime, attempts: int) -> str:
    access_token = str(data["access_token"])
    conn.access_token = access_token
    rotated = isinstance(data.get("refresh_token"), str) and bool(data["refresh_token"])
    if rotated:
        conn.refresh_token = str(data["refresh_token"])
    try:
        expires_in = int(data.get("expires_in", 3600))
    except (TypeError, ValueError):
        expires_in = 3600
    conn.expires_at = now + timedelta(seconds=max(0, expires_in))
    conn.last_refreshed_at = now
    conn.refresh_count += 1
    conn.last_error_code = ""
    conn.last_error = ""
    conn.save()
    journal_append(
        kind="oauth.refreshed",
        payload={
            "connection_id": str(conn.pk),
            "provider": conn.provider,
            "refresh_rotated": rotated,
            "expires_at": conn.expires_at.isoformat(),
            "attempts": attempts,
        },
    )
    return access_token


def _describe(attempt: _Attempt) -> str:
    text = attempt.error + (f": {attempt.description}" if attempt.description else "")
    return text[:500]


def _mark_broken(conn: OAuthConnection, attempt: _Attempt, attempts: int) -> None:
    now = timezone.now()
    conn.state = ConnectionState.BROKEN
    conn.broken_at = now
    conn.last_error_code = attempt.error[:100]
    conn.last_error = _describe(attempt)
    conn.last_error_at = now
    conn.save(update_fields=["state", "broken_at", "last_error_code", "last_error", "last_error_at", "updated_at"])
    journal_append(
        kind="oauth.failed",
        payload={
            "connection_id": str(conn.pk),
            "provider": conn.provider,
            "failure_class": PERMANENT,
            "error": attempt.error,
            "status_code": attempt.status_code,
            "attempts": attempts,
            "marked_broken": True,
        },
    )
    _notify_owners(conn)


def _record_transient(conn: OAuthConnection, attempt: _Attempt, attempts: int) -> None:
    conn.last_error_code = attempt.error[:100]
    conn.last_error = _describe(attempt)
    conn.last_error_at = timezone.now()
    conn.save(update_fields=["last_error_code", "last_error", "last_error_at", "updated_at"])
    journal_append(
        kind="oauth.failed",
        payload={
            "connection_id": str(conn.pk),
            "provider": conn.provider,
            "failure_class": TRANSIENT,
            "error": attempt.error,
            "status_code": attempt.status_code,
            "attempts": attempts,
            "marked_broken": False,
        },
    )


def _notify_owners(conn: OAuthConnection) -> None:
    workspace = getattr(connection, "tenant", None)
    if workspace is None or not getattr(workspace, "pk", None):
        logger.warning("oauth: %s is broken but no workspace is active to notify", conn.provider)
        return
    link = ""
    try:
        from apps.tenants.urlconf import workspace_reverse

        link = workspace_reverse(workspace.slug, "wsadmin:vault_oauthconnection_change", object_id=conn.pk)
    except Exception:  # a link is a convenience; the notice goes out without one
        logger.warning("oauth: no admin link for %s", conn.provider, exc_info=True)
    try:
        from apps.notifications.services import notify

        # A savepoint: a failed notice must not undo marking the connection broken.
        with transaction.atomic():
            notify(
                workspace=workspace,
                roles=(Role.OWNER,),
                kind="oauth.broken",
                subject=f"{conn} connection needs to be reconnected",
                body=(
                    f"Refreshing the {conn.provider} OAuth token failed permanently ({conn.last_error_code}). "
                    "Tools that use this connection fail until an owner reconnects it."
                ),
                link=link,
            )
    except Exception:
        logger.exception("oauth: could not notify the owners about %s", conn.provider)
