from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core import mail
from django.db import transaction

from apps.core.permissions import Role
from apps.notifications.models import Notification
from apps.notifications.services import notify
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract


@pytest.mark.django_db
def test_notify_reaches_owners_and_admins_in_app_and_by_email(
    acme: Workspace, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), workspace_schema(acme):
        notices = notify(
            workspace=acme, roles=[Role.OWNER, Role.ADMIN], kind="budget.warning", subject="Crew at 80%", body="b"
        )
        users = sorted(n.user.username for n in notices)
    assert users == ["acme-admin", "acme-owner"]
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["acme-admin@example.test", "acme-owner@example.test"]
    assert "Crew at 80%" in mail.outbox[0].subject


@pytest.mark.django_db
def test_nothing_is_sent_when_the_change_rolls_back(acme: Workspace, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True), workspace_schema(acme):
        with pytest.raises(RuntimeError), transaction.atomic():
            notify(workspace=acme, roles=[Role.OWNER], kind="x", subject="never")
            raise RuntimeError("the change failed")
        assert not Notification.objects.filter(subject="never").exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_webhook_gets_slack_compatible_json(
    acme: Workspace, webhook_server: Any, django_capture_on_commit_callbacks: Any
) -> None:
    url, receiver = webhook_server
    ws = Workspace.objects.get(pk=acme.pk)  # a copy: the persona object is shared by all tests
    ws.webhook_url = url
    with django_capture_on_commit_callbacks(execute=True), workspace_schema(ws):
        notify(workspace=ws, roles=[Role.OWNER], kind="approval.requested", subject="Approve?", link="/w/acme/inbox/")
    assert len(receiver.received) == 1
    body = receiver.received[0]
    assert "Approve?" in body["text"] and body["blocks"][0]["type"] == "section"
    assert body["quarterdeck"]["kind"] == "approval.requested"


@pytest.mark.django_db
def test_a_failing_webhook_is_logged_not_raised(
    acme: Workspace, webhook_server: Any, django_capture_on_commit_callbacks: Any, caplog: Any
) -> None:
    url, receiver = webhook_server
    receiver.status = 500
    ws = Workspace.objects.get(pk=acme.pk)
    ws.webhook_url = url
    with django_capture_on_commit_callbacks(execute=True), workspace_schema(ws):
        notices = notify(workspace=ws, roles=[Role.OWNER], kind="k", subject="s")
    assert len(notices) == 1
    assert "webhook" in caplog.text


@pytest.mark.django_db
def test_notify_outside_the_workspace_schema_is_refused(acme: Workspace) -> None:
    with pytest.raises(RuntimeError):
        notify(workspace=acme, roles=[Role.OWNER], kind="k", subject="s")


@pytest.mark.django_db
def test_portal_page_lists_and_marks_read(acme: Workspace, owner: Any) -> None:
    from django.test import Client

    with workspace_schema(acme):
        notify(workspace=acme, users=[owner], kind="k", subject="Hello owner", email=False)
    client = Client()
    client.force_login(owner)
    page = client.get("/w/acme/notifications/")
    assert b"Hello owner" in page.content
    client.post("/w/acme/notifications/read/")
    with workspace_schema(acme):
        assert not Notification.objects.filter(user=owner, read_at__isnull=True).exists()


class TestNotificationsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/notifications/"
    read_permission = "workspace.view"

    def test_only_my_notices_are_listed(self, api_as: Any, acme: Workspace, owner: Any, viewer: Any) -> None:
        subject = f"for owner {uuid.uuid4().hex}"  # other tests may have committed notices
        with workspace_schema(acme):
            notify(workspace=acme, users=[owner], kind="k", subject=subject, email=False)
        assert subject in [n["subject"] for n in api_as("owner").get(self.list_url).json()["results"]]
        assert subject not in [n["subject"] for n in api_as("viewer").get(self.list_url).json()["results"]]

    def test_mark_read_by_id(self, api_as: Any, acme: Workspace, owner: Any) -> None:
        with workspace_schema(acme):
            notice = notify(workspace=acme, users=[owner], kind="k", subject="x", email=False)[0]
        response = api_as("owner").post("/api/v1/notifications/read/", {"ids": [notice.pk]}, format="json")
        assert response.json() == {"marked": 1}
        unread = api_as("owner").get(self.list_url + "?unread=1&page_size=500").json()["results"]
        assert notice.pk not in [n["id"] for n in unread]
