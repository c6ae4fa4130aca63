from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from apps.core.errors import ValidationFailed
from apps.tenants import provisioning
from apps.tenants.models import Domain, Membership, Workspace
from apps.tenants.services import workspace_provision


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
        return cursor.fetchone() is not None


def _graph_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM ag_catalog.ag_graph WHERE name = %s", [name])
        return cursor.fetchone() is not None


@pytest.mark.django_db
def test_provisioning_creates_schema_graph_domain_and_owner(owner: Any) -> None:
    provisioned = workspace_provision(name="Hooli", slug="hooli", owner=owner)
    ws = provisioned.workspace
    assert ws.schema_name == "w_hooli" and ws.graph_name == "g_hooli"
    assert _schema_exists("w_hooli")
    assert _graph_exists("g_hooli")
    assert Domain.objects.filter(tenant=ws, is_primary=True).exists()
    assert Membership.objects.get(workspace=ws).role == "owner"
    assert provisioned.seconds > 0


@pytest.mark.django_db
def test_a_failing_default_leaves_no_half_provisioned_workspace(monkeypatch: Any) -> None:
    def broken(workspace: Workspace) -> None:
        raise RuntimeError("defaults could not be written")

    monkeypatch.setitem(provisioning._defaults, "zz-broken", broken)
    with pytest.raises(RuntimeError):
        workspace_provision(name="Broken", slug="broken-co")
    assert not Workspace.objects.filter(slug="broken-co").exists()
    assert not _schema_exists("w_broken_co")
    assert not _graph_exists("g_broken_co")


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["A", "1abc", "has space", "trailing-", "double--hyphen", "admin", "x" * 41])
def test_invalid_slugs_are_rejected(slug: str) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        workspace_provision(name="X", slug=slug)
    assert "slug" in excinfo.value.details


@pytest.mark.django_db
def test_duplicate_slug_is_rejected(acme: Workspace) -> None:
    with pytest.raises(ValidationFailed):
        workspace_provision(name="Acme again", slug="acme")
