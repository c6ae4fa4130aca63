"""The vault's REST API: contracts per endpoint, write-only values, grants and history."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from django.db import connection

from apps.audit.models import JournalEntry
from apps.core.permissions import Role
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.vault import services
from apps.vault.keeper import KeeperDenied, keeper_request
from apps.vault.models import AccessRecord, Grant, Secret
from tests.api_contract import WorkspaceEndpointContract, assert_envelope
from tests.conftest import key_client

from .conftest import make_grant, make_secret, unique

FIXED_SECRET = uuid.UUID("00000000-0000-4000-8000-00000000a11e")


class TestSecretsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/vault/secrets/"
    read_permission = "secrets.view"
    write_permission = "secrets.manage"
    create_payload: ClassVar[dict[str, Any]] = {"name": "contract-secret", "value": "contract-value-1", "tier": "L2"}
    wrong_type_field = ("tier", "L9")

    def make_object(self, workspace: Workspace) -> str:
        return f"{self.list_url}{make_secret().pk}/"

    def test_the_value_is_write_only(self, api_as: Any, acme: Workspace) -> None:
        client = api_as("admin")
        response = client.post(
            self.list_url, {"name": "write-only", "value": "never-shown-123", "kind": "token"}, format="json"
        )
        assert response.status_code == 201, response.content
        assert "never-shown-123" not in response.content.decode()
        assert "value" not in response.json()
        secret_id = response.json()["id"]
        assert response.json()["key_version"] == 1
        for url in (self.list_url, f"{self.list_url}{secret_id}/"):
            assert "never-shown-123" not in client.get(url).content.decode()
        with workspace_schema(acme):
            assert Secret.objects.get(pk=secret_id).value.reveal() == "never-shown-123"
            entry = JournalEntry.objects.filter(kind="secret.created").order_by("-seq").first()
            assert entry is not None and entry.payload["name"] == "write-only"
            assert "never-shown-123" not in str(entry.payload)

    def test_the_value_can_be_replaced_and_metadata_changed(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            secret = make_secret(value="first-value-1")
        response = api_as("admin").patch(
            f"{self.list_url}{secret.pk}/", {"value": "second-value-2", "tier": "L3"}, format="json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["tier"] == "L3"
        with workspace_schema(acme):
            assert Secret.objects.get(pk=secret.pk).value.reveal() == "second-value-2"
            entry = JournalEntry.objects.filter(kind="secret.updated").order_by("-seq").first()
            assert entry is not None and entry.payload["value_changed"] is True
            assert sorted(entry.payload["changed"]) == ["tier", "value"]

    def test_a_duplicate_name_conflicts(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            secret = make_secret()
        response = api_as("admin").post(self.list_url, {"name": secret.name, "value": "x-value"}, format="json")
        assert_envelope(response, 409, "already_exists")

    def test_an_empty_value_is_rejected(self, api_as: Any) -> None:
        response = api_as("admin").post(self.list_url, {"name": "empty", "value": ""}, format="json")
        assert "value" in assert_envelope(response, 400, "invalid")["details"]

    def test_a_viewer_cannot_write(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            secret = make_secret()
        client = api_as("viewer")
        assert_envelope(client.patch(f"{self.list_url}{secret.pk}/", {"tier": "L1"}, format="json"), 403)
        assert_envelope(client.delete(f"{self.list_url}{secret.pk}/"), 403)

    def test_delete_removes_the_secret_and_its_grants(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            secret = make_secret()
            make_grant(secret)
        assert api_as("admin").delete(f"{self.list_url}{secret.pk}/").status_code == 204
        with workspace_schema(acme):
            assert not Secret.objects.filter(pk=secret.pk).exists()
            assert not Grant.objects.filter(secret_id=secret.pk).exists()
            entry = JournalEntry.objects.filter(kind="secret.deleted").order_by("-seq").first()
            assert entry is not None and entry.payload["grants_removed"] == 1

    def test_list_stays_within_a_query_budget(
        self, api_as: Any, acme: Workspace, django_assert_max_num_queries: Any
    ) -> None:
        with workspace_schema(acme):
            for _ in range(5):
                make_grant(make_secret())
        client = api_as("viewer")
        with django_assert_max_num_queries(8):
            assert client.get(self.list_url).status_code == 200


class TestGrantsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/vault/grants/"
    read_permission = "secrets.view"
    write_permission = "secrets.manage"
    wrong_type_field = ("subject_id", "not-a-uuid")

    @property
    def create_payload(self) -> dict[str, Any]:  # type: ignore[override]
        return {"secret": str(FIXED_SECRET), "subject_type": "crew", "subject_id": str(uuid.uuid4())}

    @pytest.fixture(autouse=True)
    def _fixed_secret(self, db: None, acme: Workspace) -> None:
        with workspace_schema(acme):
            Secret.objects.create(id=FIXED_SECRET, name=unique("grantable"), value="grantable-value")
        connection.set_schema_to_public()

    def make_object(self, workspace: Workspace) -> str:
        return f"{self.list_url}{make_grant(make_secret()).pk}/"

    def test_a_lease_is_granted_and_revoked(self, api_as: Any, acme: Workspace) -> None:
        crew = uuid.uuid4()
        client = api_as("admin")
        response = client.post(
            self.list_url,
            {"secret": str(FIXED_SECRET), "subject_type": "crew", "subject_id": str(crew), "lease_seconds": 600},
            format="json",
        )
        assert response.status_code == 201, response.content
        grant = response.json()
        assert grant["state"] == "live" and grant["expires_at"]
        listed = client.get(self.list_url, {"secret": str(FIXED_SECRET), "state": "live"}).json()["results"]
        assert [g["id"] for g in listed] == [grant["id"]]
        revoked = client.post(f"{self.list_url}{grant['id']}/revoke/", {"reason": "done"}, format="json")
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert client.get(self.list_url, {"secret": str(FIXED_SECRET), "state": "live"}).json()["results"] == []
        with workspace_schema(acme):
            with pytest.raises(KeeperDenied) as info:
                keeper_request(
                    secret_name=Secret.objects.get(pk=FIXED_SECRET).name,
                    crew_id=crew,
                    agent_id=None,
                    mission_id=None,
                    intent="Look up the customer record",
                    tool_name="crm_lookup",
                )
            assert info.value.reason_code == "grant_revoked"

    def test_delete_revokes(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            grant = make_grant(make_secret())
        response = api_as("admin").delete(f"{self.list_url}{grant.pk}/")
        assert response.status_code == 200 and response.json()["revoked_at"]

    def test_an_unknown_secret_is_404(self, api_as: Any) -> None:
        payload = {"secret": str(uuid.uuid4()), "subject_type": "agent", "subject_id": str(uuid.uuid4())}
        assert_envelope(api_as("admin").post(self.list_url, payload, format="json"), 404, "not_found")

    def test_another_workspaces_secret_cannot_be_granted(self, personas: Any) -> None:
        # FIXED_SECRET exists in acme only; a globex key cannot reach it.
        payload = {"secret": str(FIXED_SECRET), "subject_type": "crew", "subject_id": str(uuid.uuid4())}
        assert_envelope(key_client(personas.globex, Role.OWNER).post(self.list_url, payload, format="json"), 404)

    def test_bad_filters_are_rejected(self, api_as: Any) -> None:
        assert_envelope(api_as("viewer").get(self.list_url, {"secret": "nope"}), 400, "invalid")


class TestAccessHistoryApi(WorkspaceEndpointContract):
    list_url = "/api/v1/vault/access/"
    read_permission = "secrets.view"

    def make_object(self, workspace: Workspace) -> str:
        crew = uuid.uuid4()
        secret = make_secret(tier="L1")
        make_grant(secret, crew_id=crew)
        credential = keeper_request(
            secret_name=secret.name,
            crew_id=crew,
            agent_id=None,
            mission_id=None,
            intent="Sync the contact list nightly",
            tool_name="crm_sync",
        )
        return f"{self.list_url}{credential.access_id}/"

    def test_history_lists_decisions_and_filters(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            url = self.make_object(acme)
            secret_id = AccessRecord.objects.get(pk=int(url.rstrip("/").rsplit("/", 1)[1])).secret_id
            with pytest.raises(KeeperDenied):
                keeper_request(
                    secret_name="missing-secret",
                    crew_id=uuid.uuid4(),
                    agent_id=None,
                    mission_id=None,
                    intent="Sync the contact list",
                    tool_name="crm_sync",
                )
        client = api_as("viewer")
        rows = client.get(self.list_url, {"secret": str(secret_id)}).json()["results"]
        assert [r["decision"] for r in rows] == ["allowed"]
        assert "value" not in rows[0]
        denied = client.get(self.list_url, {"decision": "denied"}).json()["results"]
        assert denied[0]["reason_code"] == "no_such_secret"
        assert_envelope(client.get(self.list_url, {"decision": "maybe"}), 400, "invalid")

    def test_history_is_read_only(self, api_as: Any) -> None:
        response = api_as("owner").post(self.list_url, {}, format="json")
        assert response.status_code == 405


class TestOAuthConnectionsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/vault/oauth-connections/"
    read_permission = "secrets.view"
    write_permission = "secrets.manage"
    create_payload: ClassVar[dict[str, Any]] = {
        "provider": "contract-crm",
        "client_id": "client-1",
        "client_secret": "client-secret-contract",
        "token_url": "http://127.0.0.1:9/token",
    }
    wrong_type_field = ("token_url", 12)

    def make_object(self, workspace: Workspace) -> str:
        connection_ = services.oauth_connection_create(
            provider=unique("crm"), client_id="c", client_secret="cs-1", token_url="http://127.0.0.1:9/token"
        )
        return f"{self.list_url}{connection_.pk}/"

    def test_secrets_and_tokens_are_write_only(self, api_as: Any) -> None:
        client = api_as("admin")
        payload = {**self.create_payload, "provider": unique("crm"), "refresh_token": "refresh-write-only-1"}
        response = client.post(self.list_url, payload, format="json")
        assert response.status_code == 201, response.content
        body = response.content.decode()
        assert "client-secret-contract" not in body and "refresh-write-only-1" not in body
        assert response.json()["has_refresh_token"] is True and response.json()["state"] == "healthy"
        detail = client.get(f"{self.list_url}{response.json()['id']}/").content.decode()
        assert "refresh-write-only-1" not in detail
