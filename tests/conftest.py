"""Personas and databases shared by every test.

Two workspaces are provisioned once per test session (their schemas persist): ``acme``
with one member of each role, and ``globex`` whose owner is the ``outsider``. Tests using
``db`` run inside a transaction that is rolled back; tests that need data visible to other
connections (WebSockets, threads, subprocesses) use ``committed_db`` and create uniquely
named data, because nothing is flushed afterwards (a flush would truncate the public
tables every workspace schema points at).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from apps.core.permissions import Role
from apps.tenants.models import Membership, Workspace
from apps.tenants.services import api_key_create, workspace_provision

PASSWORD = "correct-horse-battery"


@dataclass
class Personas:
    acme: Workspace
    globex: Workspace
    users: dict[str, Any]


def _user(username: str, **extra: Any) -> Any:
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model.objects.create_user(username, f"{username}@example.test", PASSWORD, **extra)
    return user


def _workspace(slug: str, name: str, owner: Any, domains: list[str]) -> Workspace:
    existing = Workspace.objects.filter(slug=slug).first()
    if existing is not None:
        return existing
    return workspace_provision(name=name, slug=slug, owner=owner, email_domains=domains).workspace


def _build_personas() -> Personas:
    users = {
        "owner": _user("acme-owner"),
        "admin": _user("acme-admin"),
        "reviewer": _user("acme-reviewer"),
        "reviewer2": _user("acme-reviewer2"),
        "operator": _user("acme-operator"),
        "viewer": _user("acme-viewer"),
        "outsider": _user("globex-owner"),
        "superuser": _user("root", is_superuser=True, is_staff=True),
    }
    acme = _workspace("acme", "Acme Corp", users["owner"], ["acme.test"])
    globex = _workspace("globex", "Globex", users["outsider"], ["globex.test"])
    for key, role in [
        ("admin", Role.ADMIN),
        ("reviewer", Role.REVIEWER),
        ("reviewer2", Role.REVIEWER),
        ("operator", Role.OPERATOR),
        ("viewer", Role.VIEWER),
    ]:
        Membership.objects.get_or_create(user=users[key], workspace=acme, defaults={"role": role})
    return Personas(acme=acme, globex=globex, users=users)


@pytest.fixture(scope="session")
def personas(django_db_setup: None, django_db_blocker: Any) -> Personas:
    with django_db_blocker.unblock():
        result = _build_personas()
        connection.set_schema_to_public()
    return result


@pytest.fixture(autouse=True)
def _public_schema_after_each_test() -> Iterator[None]:
    yield
    with contextlib.suppress(Exception):
        connection.set_schema_to_public()


@pytest.fixture
def committed_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Real commits, visible to other connections; nothing is rolled back or flushed."""
    with django_db_blocker.unblock():
        # pytest-django creates the test database only when some selected test carries a
        # django_db mark; without one these commits would land in the real database. Refuse.
        name = str(connection.settings_dict["NAME"])
        if not name.startswith("test_"):
            pytest.fail(f"committed_db would write to {name!r}, not a test database; select a django_db test too")
        yield
        connection.set_schema_to_public()


def _fresh(workspace: Workspace, django_db_blocker: Any) -> Workspace:
    # A fresh instance per test: a test that changes a workspace in memory (a rolled-back
    # update, a webhook URL) must not leak that into the next test through a shared object.
    with django_db_blocker.unblock():
        return Workspace.objects.get(pk=workspace.pk)


@pytest.fixture
def acme(personas: Personas, django_db_blocker: Any) -> Workspace:
    return _fresh(personas.acme, django_db_blocker)


@pytest.fixture
def globex(personas: Personas, django_db_blocker: Any) -> Workspace:
    return _fresh(personas.globex, django_db_blocker)


@pytest.fixture
def owner(personas: Personas) -> Any:
    return personas.users["owner"]


@pytest.fixture
def admin_user(personas: Personas) -> Any:
    return personas.users["admin"]


@pytest.fixture
def reviewer(personas: Personas) -> Any:
    return personas.users["reviewer"]


@pytest.fixture
def reviewer2(personas: Personas) -> Any:
    return personas.users["reviewer2"]


@pytest.fixture
def operator(personas: Personas) -> Any:
    return personas.users["operator"]


@pytest.fixture
def viewer(personas: Personas) -> Any:
    return personas.users["viewer"]


@pytest.fixture
def outsider(personas: Personas) -> Any:
    return personas.users["outsider"]


@pytest.fixture
def superuser(personas: Personas) -> Any:
    return personas.users["superuser"]


@pytest.fixture
def persona_users(personas: Personas) -> dict[str, Any]:
    return personas.users


def session_client(user: Any, workspace: Workspace | None = None) -> APIClient:
    """An API client logged in as ``user``, naming ``workspace`` in the X-Workspace header."""
    client = APIClient()
    client.force_authenticate(user=None)
    client.force_login(user)
    if workspace is not None:
        client.credentials(HTTP_X_WORKSPACE=workspace.slug)
    return client


def key_client(workspace: Workspace, role: str = Role.ADMIN) -> APIClient:
    """An API client authenticated by a fresh API key of ``workspace`` with ``role``."""
    _, token = api_key_create(workspace=workspace, name=f"test {role}", role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_as(personas: Personas) -> Any:
    """``api_as("operator")`` -> session client of that acme persona (acme in the header)."""

    def make(persona: str, workspace: Workspace | None = None) -> APIClient:
        return session_client(personas.users[persona], workspace or personas.acme)

    return make


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """After the session, end connections other threads left open (Channels' DB threads,
    servers started by tests), so the test database can be dropped."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# --- a webhook receiver ------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    status = 200
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, type[_Receiver]]]:
    """A webhook receiver on loopback: its URL and the handler class whose ``received`` lists the
    JSON bodies posted to it (set ``status`` to answer otherwise)."""
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()
