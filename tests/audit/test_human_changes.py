"""Changes people make to a workspace (public-schema rows) land in that workspace's journal,
in the same transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.audit.models import JournalEntry
from apps.core.context import acting_as, user_actor
from apps.core.permissions import Role
from apps.tenants import services
from apps.tenants.access import workspace_schema
from apps.tenants.models import Membership, Workspace

pytestmark = pytest.mark.django_db


def _last(workspace: Workspace, kind: str) -> JournalEntry | None:
    with workspace_schema(workspace):
        return JournalEntry.objects.filter(kind=kind).order_by("-seq").first()


def test_membership_changes_are_journaled_in_the_workspace(acme: Workspace, owner: Any) -> None:
    newcomer = get_user_model().objects.create_user("journal-newcomer", "n@example.test", "pw-123456789")
    with acting_as(user_actor(owner)):
        membership = services.membership_add(workspace=acme, user=newcomer, role=Role.VIEWER, by_role=Role.OWNER)
        services.membership_change_role(membership=membership, role=Role.OPERATOR, by_role=Role.OWNER)
        services.membership_remove(membership=membership, by_role=Role.OWNER)
    added = _last(acme, "membership.added")
    changed = _last(acme, "membership.role_changed")
    removed = _last(acme, "membership.removed")
    assert added is not None and added.payload == {
        "user_id": newcomer.pk,
        "username": newcomer.username,
        "role": "viewer",
    }
    assert added.actor == user_actor(owner).as_dict()
    assert changed is not None and (changed.payload["from_role"], changed.payload["to_role"]) == ("viewer", "operator")
    assert removed is not None and removed.payload["role"] == "operator"
    assert added.seq < changed.seq < removed.seq


def test_api_key_and_workspace_changes_are_journaled(acme: Workspace, globex: Workspace) -> None:
    api_key, _token = services.api_key_create(workspace=acme, name="ci", role=Role.VIEWER)
    services.api_key_revoke(api_key=api_key)
    services.api_key_revoke(api_key=api_key)  # already revoked: nothing new to record
    created = _last(acme, "api_key.created")
    assert created is not None and created.payload["prefix"] == api_key.prefix and "token" not in str(created.payload)
    with workspace_schema(acme):
        assert JournalEntry.objects.filter(kind="api_key.revoked", payload__api_key_id=api_key.pk).count() == 1

    services.workspace_update(workspace=acme, name="Acme Corporation", webhook_url="")
    updated = _last(acme, "workspace.updated")
    assert updated is not None and updated.payload == {
        "changes": {"name": {"from": "Acme Corp", "to": "Acme Corporation"}}
    }
    # globex's journal knows nothing of it.
    with workspace_schema(globex):
        assert not JournalEntry.objects.filter(
            kind="workspace.updated", payload__changes__name__to="Acme Corporation"
        ).exists()


def test_a_rolled_back_membership_change_leaves_no_entry(acme: Workspace) -> None:
    newcomer = get_user_model().objects.create_user("journal-rollback", "r@example.test", "pw-123456789")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.membership_add(workspace=acme, user=newcomer, role=Role.VIEWER)
        raise RuntimeError("the request failed later")
    assert not Membership.objects.filter(user=newcomer).exists()
    with workspace_schema(acme):
        assert not JournalEntry.objects.filter(kind="membership.added", payload__user_id=newcomer.pk).exists()


def test_membership_api_journals_with_the_caller_as_actor(api_as: Any, acme: Workspace, admin_user: Any) -> None:
    get_user_model().objects.create_user("journal-api-user", "a@example.test", "pw-123456789")
    response = api_as("admin").post("/api/v1/members/", {"user": "journal-api-user", "role": "viewer"}, format="json")
    assert response.status_code == 201, response.content
    added = _last(acme, "membership.added")
    assert added is not None and added.payload["username"] == "journal-api-user"
    assert added.actor == user_actor(admin_user).as_dict()
    assert added.request_id
