"""The contract every workspace-scoped endpoint keeps. Subclass it for each endpoint:

    class TestMembershipsApi(WorkspaceEndpointContract):
        list_url = "/api/v1/members/"
        read_permission = "members.view"
        write_permission = "members.manage"
        create_payload = {"user": "acme-viewer2", "role": "viewer"}

        def make_object(self, workspace):  # runs with workspace's schema active
            return f"/api/v1/members/{...}/"

and it inherits the tests below: anonymous 401, another workspace's user and API key get
404 (list and detail, reads and writes), roles without the permission get 403, and bad input (malformed JSON,
unknown fields, wrong types, oversized bodies) gets the error envelope, never a 500.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.core.permissions import ROLE_ACTIONS, Role
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.conftest import key_client, session_client

PERSONA_BY_ROLE = {
    Role.OWNER: "owner",
    Role.ADMIN: "admin",
    Role.REVIEWER: "reviewer",
    Role.OPERATOR: "operator",
    Role.VIEWER: "viewer",
}


def assert_envelope(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def roles_without(action: str) -> list[str]:
    return [role for role, actions in ROLE_ACTIONS.items() if action not in actions]


@pytest.mark.django_db
class WorkspaceEndpointContract:
    list_url: ClassVar[str]
    read_permission: ClassVar[str]
    write_permission: ClassVar[str | None] = None
    # POST body for list_url that a role with write_permission may send; None: no create.
    create_payload: ClassVar[dict[str, Any] | None] = None
    # Field whose wrong type must be rejected on create, with a wrong-typed value.
    wrong_type_field: ClassVar[tuple[str, Any] | None] = None

    def make_object(self, workspace: Workspace) -> str | None:
        """Create one object in ``workspace`` and return its detail URL (None: no detail)."""
        return None

    def _detail_url(self, workspace: Workspace) -> str | None:
        with workspace_schema(workspace):
            return self.make_object(workspace)

    def _writer(self, personas: Any) -> APIClient:
        role = next(r for r in (Role.OWNER, Role.ADMIN) if self.write_permission in ROLE_ACTIONS[r])
        return session_client(personas.users[PERSONA_BY_ROLE[role]], personas.acme)

    # --- who may see what -------------------------------------------------------------------
    def test_anonymous_gets_401(self, personas: Any) -> None:
        client = APIClient()
        client.credentials(HTTP_X_WORKSPACE=personas.acme.slug)
        assert_envelope(client.get(self.list_url), 401, "not_authenticated")

    def test_reader_gets_200(self, personas: Any) -> None:
        role = next(
            r
            for r in (Role.VIEWER, Role.OPERATOR, Role.REVIEWER, Role.ADMIN, Role.OWNER)
            if self.read_permission in ROLE_ACTIONS[r]
        )
        response = session_client(personas.users[PERSONA_BY_ROLE[role]], personas.acme).get(self.list_url)
        assert response.status_code == 200, response.content[:500]

    def test_user_of_another_workspace_gets_404_on_list(self, personas: Any) -> None:
        client = session_client(personas.users["outsider"], personas.acme)
        assert_envelope(client.get(self.list_url), 404, "not_found")

    def test_user_of_another_workspace_gets_404_on_detail(self, personas: Any) -> None:
        url = self._detail_url(personas.acme)
        if url is None:
            pytest.skip("endpoint has no detail view")
        client = session_client(personas.users["outsider"], personas.acme)
        assert_envelope(client.get(url), 404, "not_found")

    def test_api_key_of_another_workspace_gets_404_on_detail(self, personas: Any) -> None:
        url = self._detail_url(personas.acme)
        if url is None:
            pytest.skip("endpoint has no detail view")
        # The globex key reads globex's schema, where the acme object does not exist.
        response = key_client(personas.globex, Role.OWNER).get(url)
        assert_envelope(response, 404, "not_found")
        # ... while an acme key sees it, so the 404 above is about the workspace.
        assert key_client(personas.acme, Role.OWNER).get(url).status_code == 200

    def test_another_workspace_cannot_write(self, personas: Any) -> None:
        """Writes from outside the workspace: 404 for a user who is not a member (whatever the
        method), and nothing found for another workspace's key (404, or 405 where the method
        is not one the endpoint has); the object is still there afterwards."""
        outsider = session_client(personas.users["outsider"], personas.acme)
        if self.create_payload is not None:
            assert_envelope(outsider.post(self.list_url, self.create_payload, format="json"), 404, "not_found")
        url = self._detail_url(personas.acme)
        if url is None:
            if self.create_payload is None:
                pytest.skip("endpoint has neither create nor detail")
            return
        globex_key = key_client(personas.globex, Role.OWNER)
        for method in ("put", "patch", "delete"):
            assert_envelope(getattr(outsider, method)(url, {}, format="json"), 404, "not_found")
            response = getattr(globex_key, method)(url, {}, format="json")
            assert response.status_code in (404, 405), (method, response.status_code, response.content[:300])
            assert_envelope(response, response.status_code)
        assert key_client(personas.acme, Role.OWNER).get(url).status_code == 200

    def test_roles_without_read_permission_get_403(self, personas: Any) -> None:
        for role in roles_without(self.read_permission):
            client = session_client(personas.users[PERSONA_BY_ROLE[role]], personas.acme)
            assert_envelope(client.get(self.list_url), 403, "permission_denied")

    def test_roles_without_write_permission_get_403(self, personas: Any) -> None:
        if self.create_payload is None or self.write_permission is None:
            pytest.skip("endpoint has no create")
        for role in roles_without(self.write_permission):
            client = session_client(personas.users[PERSONA_BY_ROLE[role]], personas.acme)
            response = client.post(self.list_url, self.create_payload, format="json")
            assert_envelope(response, 403, "permission_denied")

    # --- bad input -------------------------------------------------------------------------
    def test_malformed_json_gets_envelope(self, personas: Any) -> None:
        if self.create_payload is None:
            pytest.skip("endpoint has no create")
        response = self._writer(personas).post(self.list_url, data='{"broken": ', content_type="application/json")
        assert_envelope(response, 400, "malformed_request")

    def test_unknown_field_gets_envelope(self, personas: Any) -> None:
        if self.create_payload is None:
            pytest.skip("endpoint has no create")
        payload = {**self.create_payload, "no_such_field": 1}
        error = assert_envelope(self._writer(personas).post(self.list_url, payload, format="json"), 400, "invalid")
        assert "no_such_field" in error["details"]

    def test_wrong_type_gets_envelope(self, personas: Any) -> None:
        if self.create_payload is None or self.wrong_type_field is None:
            pytest.skip("endpoint has no typed create field declared")
        field, value = self.wrong_type_field
        payload = {**self.create_payload, field: value}
        error = assert_envelope(self._writer(personas).post(self.list_url, payload, format="json"), 400, "invalid")
        assert field in error["details"]

    def test_non_object_body_gets_envelope(self, personas: Any) -> None:
        if self.create_payload is None:
            pytest.skip("endpoint has no create")
        response = self._writer(personas).post(self.list_url, data="[1, 2]", content_type="application/json")
        assert_envelope(response, 400, "invalid")

    def test_oversized_body_gets_413(self, personas: Any) -> None:
        if self.create_payload is None:
            pytest.skip("endpoint has no create")
        big = json.dumps({"padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
        response = self._writer(personas).post(self.list_url, data=big, content_type="application/json")
        assert_envelope(response, 413, "request_too_large")
