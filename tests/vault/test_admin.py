"""The vault in the workspace admin: usable, journaled, and never showing a value."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from apps.audit.models import JournalEntry
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.vault import services
from apps.vault.devservers import OAuthTokenServer
from apps.vault.models import Grant, OAuthConnection, Secret
from tests.conftest import PASSWORD

from .conftest import make_grant, make_secret, unique

BASE = "/w/acme/admin/vault"


@pytest.fixture
def admin_client(db: None, superuser: Any) -> Client:
    client = Client()
    assert client.login(username=superuser.username, password=PASSWORD)
    return client


def test_a_secret_is_added_with_a_write_only_value(admin_client: Client, acme: Workspace) -> None:
    name = unique("admin-secret")
    page = admin_client.get(f"{BASE}/secret/add/")
    assert page.status_code == 200 and b'type="password"' in page.content
    response = admin_client.post(
        f"{BASE}/secret/add/",
        {
            "name": name,
            "kind": "api_key",
            "tier": "L2",
            "description": "",
            "new_value": "admin-value-123",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    with workspace_schema(acme):
        secret = Secret.objects.get(name=name)
        assert secret.value.reveal() == "admin-value-123"
        assert JournalEntry.objects.filter(kind="secret.created", payload__name=name).exists()
    change = admin_client.get(f"{BASE}/secret/{secret.pk}/change/")
    assert change.status_code == 200
    assert b"admin-value-123" not in change.content
    listing = admin_client.get(f"{BASE}/secret/")
    assert listing.status_code == 200 and name.encode() in listing.content
    assert b"admin-value-123" not in listing.content


def test_a_secret_without_a_value_is_refused(admin_client: Client, acme: Workspace) -> None:
    response = admin_client.post(
        f"{BASE}/secret/add/",
        {
            "name": unique("novalue"),
            "kind": "api_key",
            "tier": "L1",
            "new_value": "",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200 and b"needs a value" in response.content


def test_a_rejected_form_does_not_echo_the_value(admin_client: Client, acme: Workspace) -> None:
    with workspace_schema(acme):
        taken = make_secret()
    response = admin_client.post(
        f"{BASE}/secret/add/",
        {
            "name": taken.name,
            "kind": "api_key",
            "tier": "L1",
            "new_value": "echo-me-not-456",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert b"echo-me-not-456" not in response.content


def test_editing_without_a_new_value_keeps_the_old_one(admin_client: Client, acme: Workspace) -> None:
    with workspace_schema(acme):
        secret = make_secret(value="keep-me-789", tier="L1")
    response = admin_client.post(
        f"{BASE}/secret/{secret.pk}/change/",
        {
            "name": secret.name,
            "kind": "api_key",
            "tier": "L3",
            "description": "now L3",
            "new_value": "",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    with workspace_schema(acme):
        secret.refresh_from_db()
        assert (secret.tier, secret.value.reveal()) == ("L3", "keep-me-789")


def test_grants_are_revoked_by_an_action_and_never_deleted(admin_client: Client, acme: Workspace) -> None:
    with workspace_schema(acme):
        grant = make_grant(make_secret())
    response = admin_client.post(f"{BASE}/grant/", {"action": "revoke", "_selected_action": [str(grant.pk)]})
    assert response.status_code == 302
    with workspace_schema(acme):
        assert Grant.objects.get(pk=grant.pk).revoked_at is not None
    assert admin_client.get(f"{BASE}/grant/{grant.pk}/delete/").status_code == 403


def test_a_grant_is_given_in_the_admin(admin_client: Client, acme: Workspace) -> None:
    with workspace_schema(acme):
        secret = make_secret()
    crew = uuid.uuid4()
    response = admin_client.post(
        f"{BASE}/grant/add/", {"secret": str(secret.pk), "subject_type": "crew", "subject_id": str(crew), "note": "x"}
    )
    assert response.status_code == 302, response.content[:2000]
    with workspace_schema(acme):
        assert Grant.objects.filter(secret=secret, subject_id=crew).exists()
        assert JournalEntry.objects.filter(kind="secret.granted", payload__subject_id=str(crew)).exists()


def test_the_access_history_is_read_only(admin_client: Client) -> None:
    assert admin_client.get(f"{BASE}/accessrecord/").status_code == 200
    assert admin_client.get(f"{BASE}/accessrecord/add/").status_code == 403


def test_oauth_connections_show_their_state_and_check_their_token(admin_client: Client, acme: Workspace) -> None:
    with OAuthTokenServer() as server, workspace_schema(acme):
        conn = services.oauth_connection_create(
            provider=unique("crm"),
            client_id=server.client_id,
            client_secret=server.client_secret,
            token_url=server.token_url,
            refresh_token=server.issue_refresh_token(),
        )
        refresh = conn.refresh_token.reveal()  # type: ignore[union-attr]
        listing = admin_client.get(f"{BASE}/oauthconnection/")
        assert listing.status_code == 200 and b"healthy" in listing.content.lower()
        response = admin_client.post(
            f"{BASE}/oauthconnection/", {"action": "check_token", "_selected_action": [str(conn.pk)]}, follow=True
        )
        assert b"token valid" in response.content
        assert server.refreshes == 1
        change = admin_client.get(f"{BASE}/oauthconnection/{conn.pk}/change/")
        assert change.status_code == 200
        assert refresh.encode() not in change.content and server.client_secret.encode() not in change.content
    with workspace_schema(acme):  # each admin request ends on the public schema
        assert OAuthConnection.objects.get(pk=conn.pk).refresh_count == 1


def test_demo_secrets_are_seeded_once_with_random_values(in_acme: Workspace) -> None:
    from apps.vault.demo import DEMO_SECRETS, seed_demo_vault

    seed_demo_vault(in_acme, {})
    first = {s.name: s.value.reveal() for s in Secret.objects.filter(name__in=[n for n, *_ in DEMO_SECRETS])}
    seed_demo_vault(in_acme, {})
    again = {s.name: s.value.reveal() for s in Secret.objects.filter(name__in=[n for n, *_ in DEMO_SECRETS])}
    assert first == again and len(first) == 4
    assert {s.tier for s in Secret.objects.filter(name__in=first)} == {"L1", "L2", "L3", "L4"}
