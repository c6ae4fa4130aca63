"""OAuth connections against a real local token endpoint that rotates refresh tokens."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.audit.models import JournalEntry
from apps.notifications.models import Notification
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.vault import services
from apps.vault.devservers import OAuthTokenServer
from apps.vault.models import ConnectionState, OAuthConnection
from apps.vault.oauth import (
    OAuthConnectionBroken,
    OAuthTemporarilyUnavailable,
    advisory_lock_key,
    get_access_token,
)
from apps.vault.selectors import oauth_connection_status

from .conftest import unique


@pytest.fixture
def token_server() -> Iterator[OAuthTokenServer]:
    with OAuthTokenServer(client_id="qd-client", expires_in=3600) as server:
        yield server


def connect(server: OAuthTokenServer, *, expired: bool = True, **extra: Any) -> OAuthConnection:
    return services.oauth_connection_create(
        provider=unique("crm"),
        client_id=server.client_id,
        client_secret=server.client_secret,
        token_url=server.token_url,
        scopes="contacts.read contacts.write",
        refresh_token=server.issue_refresh_token(),
        access_token=server.issue_access_token(),
        expires_at=timezone.now() + (timedelta(minutes=-5) if expired else timedelta(hours=1)),
        **extra,
    )


def oauth_entries(connection_id: uuid.UUID, kind: str) -> list[JournalEntry]:
    return [e for e in JournalEntry.objects.filter(kind=kind) if e.payload.get("connection_id") == str(connection_id)]


def test_a_fresh_token_is_returned_without_calling_the_provider(
    in_acme: Workspace, token_server: OAuthTokenServer
) -> None:
    conn = connect(token_server, expired=False)
    token = get_access_token(conn)
    assert token_server.is_live_access_token(token)
    assert token_server.requests == 0


def test_an_expired_token_is_refreshed_inline_and_the_refresh_token_rotated(
    in_acme: Workspace, token_server: OAuthTokenServer
) -> None:
    conn = connect(token_server)
    old_refresh = conn.refresh_token.reveal()  # type: ignore[union-attr]
    token = get_access_token(conn)
    assert token_server.refreshes == 1 and token_server.is_live_access_token(token)
    conn.refresh_from_db()
    assert conn.refresh_token.reveal() != old_refresh  # type: ignore[union-attr]
    assert conn.expires_at is not None and conn.expires_at > timezone.now() + timedelta(minutes=50)
    assert get_access_token(conn) == token  # now fresh: no second refresh
    assert token_server.refreshes == 1
    (entry,) = oauth_entries(conn.pk, "oauth.refreshed")
    assert entry.payload["refresh_rotated"] is True
    assert token not in str(entry.payload)


def test_a_token_near_expiry_is_refreshed(in_acme: Workspace, token_server: OAuthTokenServer, settings: Any) -> None:
    settings.VAULT_OAUTH_REFRESH_SKEW_SECONDS = 120
    conn = services.oauth_connection_create(
        provider=unique("crm"),
        client_id=token_server.client_id,
        client_secret=token_server.client_secret,
        token_url=token_server.token_url,
        refresh_token=token_server.issue_refresh_token(),
        access_token="at-about-to-expire",
        expires_at=timezone.now() + timedelta(seconds=60),
    )
    assert get_access_token(conn) != "at-about-to-expire"
    assert token_server.refreshes == 1


def test_basic_client_authentication_works(in_acme: Workspace, token_server: OAuthTokenServer) -> None:
    conn = connect(token_server, auth_method="client_secret_basic")
    assert token_server.is_live_access_token(get_access_token(conn))


@pytest.mark.slow
def test_twenty_concurrent_calls_refresh_exactly_once(committed_db: None, acme: Workspace) -> None:
    with OAuthTokenServer(latency_seconds=0.2) as server:
        with workspace_schema(acme):
            conn = connect(server)
        results: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(20)

        def tool_call() -> None:
            try:
                with workspace_schema(acme):
                    barrier.wait(timeout=10)
                    results.append(get_access_token(conn.pk))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
            finally:
                connection.close()  # each thread had its own database connection

        threads = [threading.Thread(target=tool_call) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert errors == []
        assert len(results) == 20
        assert server.refreshes == 1
        assert server.rejected_reuse == 0
        assert len(set(results)) == 1 and server.is_live_access_token(results[0])
        with workspace_schema(acme):
            conn.refresh_from_db()
            assert conn.refresh_count == 1 and conn.state == ConnectionState.HEALTHY
            assert len(oauth_entries(conn.pk, "oauth.refreshed")) == 1


def test_the_provider_rejects_a_reused_refresh_token(token_server: OAuthTokenServer) -> None:
    import httpx

    refresh = token_server.issue_refresh_token()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": token_server.client_id,
        "client_secret": token_server.client_secret,
    }
    assert httpx.post(token_server.token_url, data=form).status_code == 200
    reused = httpx.post(token_server.token_url, data=form)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")


# --- permanent failures --------------------------------------------------------------------


def test_invalid_grant_marks_the_connection_broken_journals_and_notifies_owners(
    in_acme: Workspace, token_server: OAuthTokenServer, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conn = connect(token_server)
    token_server.revoke()  # the user disconnected the app at the provider
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(OAuthConnectionBroken) as info:
        get_access_token(conn)
    assert info.value.details["error"] == "invalid_grant"
    conn.refresh_from_db()
    assert conn.state == ConnectionState.BROKEN and conn.last_error_code == "invalid_grant"
    (entry,) = oauth_entries(conn.pk, "oauth.failed")
    assert entry.payload["failure_class"] == "permanent" and entry.payload["marked_broken"] is True
    assert Notification.objects.filter(user=owner, kind="oauth.broken").exists()
    assert any(owner.email in message.to for message in mail.outbox)
    # Later calls fail fast with the same clear error, without calling the provider again.
    requests = token_server.requests
    with pytest.raises(OAuthConnectionBroken):
        get_access_token(conn)
    assert token_server.requests == requests
    status = oauth_connection_status(provider=conn.provider)
    assert (status.state, status.healthy, status.last_error_code) == ("broken", False, "invalid_grant")


def test_a_reconnect_makes_a_broken_connection_healthy(in_acme: Workspace, token_server: OAuthTokenServer) -> None:
    conn = connect(token_server)
    token_server.revoke()
    with pytest.raises(OAuthConnectionBroken):
        get_access_token(conn)
    services.oauth_connection_update(connection=conn, refresh_token=token_server.issue_refresh_token())
    assert token_server.is_live_access_token(get_access_token(conn))


@pytest.mark.parametrize(("status", "error"), [(401, "invalid_client"), (400, "unauthorized_client"), (403, "")])
def test_client_errors_are_permanent(
    in_acme: Workspace, token_server: OAuthTokenServer, status: int, error: str
) -> None:
    conn = connect(token_server)
    token_server.fail_next(status, error=error, count=1)
    with pytest.raises(OAuthConnectionBroken):
        get_access_token(conn)
    assert token_server.requests == 1  # no retry
    conn.refresh_from_db()
    assert conn.state == ConnectionState.BROKEN
    assert conn.last_error_code == (error or f"http_{status}")


def test_a_wrong_client_secret_is_permanent(in_acme: Workspace, token_server: OAuthTokenServer) -> None:
    conn = connect(token_server)
    services.oauth_connection_update(connection=conn, client_secret="not-the-client-secret")
    with pytest.raises(OAuthConnectionBroken):
        get_access_token(conn)
    conn.refresh_from_db()
    assert conn.last_error_code == "invalid_client"


# --- transient failures --------------------------------------------------------------------


def test_server_errors_are_retried_with_backoff_and_then_succeed(
    in_acme: Workspace, token_server: OAuthTokenServer
) -> None:
    conn = connect(token_server)
    token_server.fail_next(503, count=2)
    token = get_access_token(conn)
    assert token_server.is_live_access_token(token)
    assert (token_server.requests, token_server.refreshes) == (3, 1)
    (entry,) = oauth_entries(conn.pk, "oauth.refreshed")
    assert entry.payload["attempts"] == 3


def test_persistent_server_errors_leave_the_connection_healthy(
    in_acme: Workspace, token_server: OAuthTokenServer, settings: Any
) -> None:
    settings.VAULT_OAUTH_ATTEMPTS = 3
    conn = connect(token_server)
    token_server.fail_next(500, count=3)
    with pytest.raises(OAuthTemporarilyUnavailable):
        get_access_token(conn)
    conn.refresh_from_db()
    assert conn.state == ConnectionState.HEALTHY and conn.last_error_code == "http_500"
    (entry,) = oauth_entries(conn.pk, "oauth.failed")
    assert entry.payload["failure_class"] == "transient" and entry.payload["marked_broken"] is False
    # The provider recovers: the next call refreshes with the same (unused) refresh token.
    assert token_server.is_live_access_token(get_access_token(conn))


def test_rate_limits_are_transient(in_acme: Workspace, token_server: OAuthTokenServer) -> None:
    conn = connect(token_server)
    token_server.fail_next(429, error="rate_limited", count=1)
    assert token_server.is_live_access_token(get_access_token(conn))


def test_timeouts_are_transient(in_acme: Workspace, token_server: OAuthTokenServer, settings: Any) -> None:
    settings.VAULT_OAUTH_TIMEOUT_SECONDS = 1
    conn = connect(token_server)
    token_server.stall_next(seconds=1.5)
    assert token_server.is_live_access_token(get_access_token(conn))
    conn.refresh_from_db()
    assert conn.state == ConnectionState.HEALTHY


def test_connection_errors_are_transient(in_acme: Workspace, settings: Any) -> None:
    settings.VAULT_OAUTH_ATTEMPTS = 2
    server = OAuthTokenServer().start()
    url = server.token_url
    server.stop()  # nothing listens on that port any more
    conn = services.oauth_connection_create(
        provider=unique("crm"),
        client_id="c",
        client_secret="s3cret-client",
        token_url=url,
        refresh_token="rt-unused",
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    with pytest.raises(OAuthTemporarilyUnavailable):
        get_access_token(conn)
    conn.refresh_from_db()
    assert conn.state == ConnectionState.HEALTHY and conn.last_error_code == "connection_error"


def test_a_malformed_answer_is_transient(in_acme: Workspace, token_server: OAuthTokenServer, settings: Any) -> None:
    settings.VAULT_OAUTH_ATTEMPTS = 1
    conn = connect(token_server)
    token_server.fail_next(200, body="<html>maintenance</html>")
    with pytest.raises(OAuthTemporarilyUnavailable):
        get_access_token(conn)
    conn.refresh_from_db()
    assert conn.state == ConnectionState.HEALTHY and conn.last_error_code == "invalid_response"


def test_a_still_valid_token_is_used_when_an_early_refresh_fails(
    in_acme: Workspace, token_server: OAuthTokenServer, settings: Any
) -> None:
    settings.VAULT_OAUTH_ATTEMPTS = 1
    settings.VAULT_OAUTH_REFRESH_SKEW_SECONDS = 300
    live = token_server.issue_access_token()
    conn = services.oauth_connection_create(
        provider=unique("crm"),
        client_id=token_server.client_id,
        client_secret=token_server.client_secret,
        token_url=token_server.token_url,
        refresh_token=token_server.issue_refresh_token(),
        access_token=live,
        expires_at=timezone.now() + timedelta(seconds=120),
    )
    token_server.fail_next(502)
    assert get_access_token(conn) == live


def test_tokens_and_client_secret_never_reach_the_row_or_the_journal(
    in_acme: Workspace, token_server: OAuthTokenServer
) -> None:
    conn = connect(token_server)
    token = get_access_token(conn)
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(c)::text FROM vault_oauthconnection c WHERE id = %s", [conn.pk])
        row = cursor.fetchone()[0]
    conn.refresh_from_db()
    for plaintext in (token, token_server.client_secret, conn.refresh_token.reveal()):  # type: ignore[union-attr]
        assert plaintext not in row
        assert not JournalEntry.objects.filter(payload__icontains=plaintext).exists()


def test_advisory_lock_keys_differ_per_workspace_and_connection() -> None:
    pk = uuid.uuid4()
    assert advisory_lock_key("w_acme", pk) != advisory_lock_key("w_globex", pk)
    assert advisory_lock_key("w_acme", pk) != advisory_lock_key("w_acme", uuid.uuid4())
    assert -(2**63) <= advisory_lock_key("w_acme", pk) < 2**63
