from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.core.permissions import Role
from apps.tenants.models import ApiKey, Membership, Workspace
from apps.tenants.services import api_key_create, api_key_revoke
from tests.api_contract import WorkspaceEndpointContract, assert_envelope
from tests.conftest import PASSWORD, key_client, session_client


class TestMembersApi(WorkspaceEndpointContract):
    list_url = "/api/v1/members/"
    read_permission = "members.view"
    write_permission = "members.manage"
    create_payload = {"user": "newcomer", "role": "viewer"}
    wrong_type_field = ("role", 42)

    @pytest.fixture(autouse=True)
    def _newcomer(self, db: None) -> None:
        get_user_model().objects.create_user("newcomer", "newcomer@example.test", PASSWORD)

    def make_object(self, workspace: Workspace) -> str:
        membership = Membership.objects.get(workspace=workspace, role=Role.OWNER)
        return f"/api/v1/members/{membership.pk}/"

    def test_admin_adds_a_member(self, api_as: Any, acme: Workspace) -> None:
        response = api_as("admin").post(self.list_url, {"user": "newcomer", "role": "reviewer"}, format="json")
        assert response.status_code == 201, response.content
        assert Membership.objects.get(workspace=acme, user__username="newcomer").role == "reviewer"

    def test_admin_cannot_make_an_owner(self, api_as: Any) -> None:
        response = api_as("admin").post(self.list_url, {"user": "newcomer", "role": "owner"}, format="json")
        assert_envelope(response, 403, "permission_denied")

    def test_adding_an_existing_member_conflicts(self, api_as: Any) -> None:
        response = api_as("admin").post(self.list_url, {"user": "acme-viewer", "role": "viewer"}, format="json")
        assert_envelope(response, 409, "already_member")

    def test_the_last_owner_cannot_be_demoted(self, api_as: Any, acme: Workspace) -> None:
        membership = Membership.objects.get(workspace=acme, role=Role.OWNER)
        response = api_as("owner").patch(f"{self.list_url}{membership.pk}/", {"role": "admin"}, format="json")
        assert_envelope(response, 409, "last_owner")
        membership.refresh_from_db()
        assert membership.role == Role.OWNER

    def test_unknown_user_is_a_field_error(self, api_as: Any) -> None:
        response = api_as("admin").post(self.list_url, {"user": "nobody", "role": "viewer"}, format="json")
        assert "user" in assert_envelope(response, 400, "invalid")["details"]

    def test_list_stays_within_a_query_budget(self, api_as: Any, django_assert_max_num_queries: Any) -> None:
        client = api_as("viewer")
        with django_assert_max_num_queries(8):
            assert client.get(self.list_url).status_code == 200


class TestApiKeysApi(WorkspaceEndpointContract):
    list_url = "/api/v1/api-keys/"
    read_permission = "apikeys.manage"
    write_permission = "apikeys.manage"
    create_payload = {"name": "ci", "role": "operator"}
    wrong_type_field = ("expires_at", "next tuesday")

    def make_object(self, workspace: Workspace) -> str:
        api_key, _ = api_key_create(workspace=workspace, name="detail", role=Role.VIEWER)
        return f"/api/v1/api-keys/{api_key.pk}/"

    def test_token_is_shown_once_and_stored_hashed(self, api_as: Any, acme: Workspace) -> None:
        response = api_as("admin").post(self.list_url, {"name": "deploy bot"}, format="json")
        assert response.status_code == 201
        token = response.json()["token"]
        assert token.startswith("qdk_")
        stored = ApiKey.objects.get(pk=response.json()["id"])
        assert token not in (stored.key_hash, stored.prefix)
        listed = api_as("admin").get(self.list_url).json()["results"]
        assert all("token" not in row for row in listed)

    def test_a_key_acts_in_its_workspace_with_its_role(self, acme: Workspace) -> None:
        client = key_client(acme, Role.VIEWER)
        assert client.get("/api/v1/workspace/").json()["slug"] == "acme"
        assert_envelope(client.patch("/api/v1/workspace/", {"name": "x"}, format="json"), 403)

    def test_revoked_key_stops_working_on_next_request(self, acme: Workspace) -> None:
        api_key, token = api_key_create(workspace=acme, name="short", role=Role.VIEWER)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert client.get("/api/v1/workspace/").status_code == 200
        api_key_revoke(api_key=api_key)
        assert_envelope(client.get("/api/v1/workspace/"), 401, "authentication_failed")

    def test_last_used_is_recorded(self, acme: Workspace) -> None:
        api_key, token = api_key_create(workspace=acme, name="seen", role=Role.VIEWER)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        client.get("/api/v1/workspace/")
        api_key.refresh_from_db()
        assert api_key.last_used_at is not None

    def test_a_forged_token_is_rejected(self, acme: Workspace) -> None:
        api_key, _token = api_key_create(workspace=acme, name="real", role=Role.VIEWER)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer qdk_{api_key.prefix}_forged")
        assert_envelope(client.get("/api/v1/workspace/"), 401, "authentication_failed")

    def test_revoking_via_api(self, api_as: Any, acme: Workspace) -> None:
        api_key, _ = api_key_create(workspace=acme, name="to revoke", role=Role.VIEWER)
        response = api_as("owner").delete(f"{self.list_url}{api_key.pk}/")
        assert response.status_code == 200 and response.json()["revoked_at"]


@pytest.mark.django_db
class TestWorkspaceApi:
    def test_session_without_workspace_header_gets_404_envelope(self, owner: Any) -> None:
        client = session_client(owner)
        assert_envelope(client.get("/api/v1/workspace/"), 404, "not_found")

    def test_owner_updates_workspace(self, api_as: Any) -> None:
        response = api_as("owner").patch(
            "/api/v1/workspace/", {"email_domains": ["acme.test", "acme.io"]}, format="json"
        )
        assert response.status_code == 200
        assert response.json()["email_domains"] == ["acme.test", "acme.io"]

    def test_workspace_list_shows_only_my_workspaces(self, owner: Any, outsider: Any) -> None:
        assert [w["slug"] for w in session_client(owner).get("/api/v1/workspaces/").json()] == ["acme"]
        assert [w["slug"] for w in session_client(outsider).get("/api/v1/workspaces/").json()] == ["globex"]

    def test_only_superusers_provision(self, owner: Any) -> None:
        response = session_client(owner).post("/api/v1/workspaces/", {"name": "X", "slug": "xco"}, format="json")
        assert_envelope(response, 403, "permission_denied")

    def test_superuser_provisions_through_the_api(self, superuser: Any, owner: Any) -> None:
        response = session_client(superuser).post(
            "/api/v1/workspaces/", {"name": "Initech", "slug": "initech", "owner": "acme-owner"}, format="json"
        )
        assert response.status_code == 201, response.content
        assert response.json()["workspace"]["slug"] == "initech"
        assert response.json()["seconds"] > 0

    def test_invalid_slug_is_a_field_error(self, superuser: Any) -> None:
        response = session_client(superuser).post(
            "/api/v1/workspaces/", {"name": "Bad", "slug": "Bad Slug!"}, format="json"
        )
        assert "slug" in assert_envelope(response, 400, "invalid")["details"]

    def test_unknown_api_path_gets_envelope(self, owner: Any) -> None:
        assert_envelope(session_client(owner).get("/api/v1/nope/"), 404, "not_found")

    def test_wrong_content_type_gets_envelope(self, api_as: Any) -> None:
        response = api_as("owner").patch(
            "/api/v1/workspace/", data="name=x", content_type="application/x-www-form-urlencoded"
        )
        assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.django_db
def test_openapi_schema_validates(superuser: Any) -> None:
    from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    reset_generator_stats()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    # Generated without a warning: every authentication class and choice set is described.
    assert not GENERATOR_STATS, dict(GENERATOR_STATS._warn_cache)
    assert "/api/v1/members/" in schema["paths"]
    # Integrations learn from the schema how to send their API key, on every operation.
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "qdk_<prefix>_<secret>",
    }
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert operations and all({"ApiKey": []} in op["security"] for op in operations)
    assert schema["components"]["schemas"]["BudgetModeEnum"]["enum"] == ["hard", "soft", "tiered"]
    # The documented responses are the ones sent (both differed before; found by schemathesis).
    notifications = schema["paths"]["/api/v1/notifications/"]["get"]["responses"]["200"]
    assert notifications["content"]["application/json"]["schema"]["$ref"].endswith("/PaginatedNotificationList")
    webhook_url = schema["components"]["schemas"]["Workspace"]["properties"]["webhook_url"]
    assert webhook_url["type"] == "string" and "format" not in webhook_url
    response = session_client(superuser).get("/api/schema/")
    assert response.status_code == 200
