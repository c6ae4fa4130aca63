from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apps.tenants.models import Workspace


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_member_sees_workspace_home(owner: Any) -> None:
    response = _client(owner).get("/w/acme/")
    assert response.status_code == 200
    assert b"Acme Corp" in response.content


@pytest.mark.django_db
def test_non_member_gets_404_not_403(outsider: Any) -> None:
    assert _client(outsider).get("/w/acme/").status_code == 404


@pytest.mark.django_db
def test_unknown_workspace_gets_404(owner: Any) -> None:
    assert _client(owner).get("/w/no-such-place/").status_code == 404


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(personas: Any) -> None:
    response = Client().get("/w/acme/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/w/acme/")


@pytest.mark.django_db
def test_chooser_lists_my_workspaces_with_their_urls(owner: Any) -> None:
    response = _client(owner).get("/")
    assert b'href="/w/acme/"' in response.content
    assert b"Globex" not in response.content


@pytest.mark.django_db
def test_superuser_reaches_workspace_admin_without_membership(superuser: Any) -> None:
    response = _client(superuser).get("/w/acme/admin/")
    assert response.status_code == 200
    assert b"Acme Corp" in response.content


@pytest.mark.django_db
def test_members_who_are_not_superusers_do_not_get_the_workspace_admin(owner: Any) -> None:
    response = _client(owner).get("/w/acme/admin/")
    assert response.status_code == 302  # to the admin login


@pytest.mark.django_db
def test_public_admin_lists_workspaces(superuser: Any) -> None:
    response = _client(superuser).get("/admin/tenants/workspace/")
    assert response.status_code == 200
    assert b"/w/acme/admin/" in response.content


@pytest.mark.django_db
def test_each_request_starts_on_the_public_schema(owner: Any, outsider: Any) -> None:
    client = _client(owner)
    client.get("/w/acme/")
    assert connection.schema_name == "public"
    # A request outside any workspace must not see the last workspace's schema.
    assert client.get("/").status_code == 200
    assert connection.schema_name == "public"


@pytest.mark.django_db
def test_login_page_renders_and_logs_in(owner: Any) -> None:
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "acme-owner", "password": "correct-horse-battery"})
    assert response.status_code == 302


@pytest.mark.django_db
def test_workspace_reverse_gives_prefixed_urls(acme: Workspace) -> None:
    from apps.tenants.urlconf import workspace_reverse

    assert workspace_reverse("acme", "portal:home") == "/w/acme/"
    assert workspace_reverse("acme", "wsadmin:index") == "/w/acme/admin/"


@pytest.mark.django_db
def test_navigation_follows_the_permission_table(reviewer: Any, viewer: Any) -> None:
    from apps.core.permissions import ROLE_ACTIONS, Role

    response = _client(viewer).get("/w/acme/")
    assert response.context["workspace_actions"] == ROLE_ACTIONS[Role.VIEWER]
    assert "approvals.decide" not in response.context["workspace_actions"]
    # Viewers may look at the inbox (read-only); every member gets the read pages.
    for link in (b'href="/w/acme/inbox/"', b'href="/w/acme/missions/"', b'href="/w/acme/journal/"'):
        assert link in response.content
