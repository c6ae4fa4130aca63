"""The workspace admin (a real tool: edits go through the services and are journaled), the
webhook notification, and the API schema."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.test import Client

from apps.approvals.gate import gate
from apps.approvals.models import Policy
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import call_kwargs, journal, make_policy

pytestmark = pytest.mark.django_db


def admin_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


POLICY_FORM = {
    "name": "admin-made policy",
    "description": "",
    "enabled": "on",
    "priority": "20",
    "tool_pattern": "refund",
    "conditions": '[{"path": "amount", "op": "gt", "value": 500}]',
    "min_estimated_cost_microusd": "",
    "crew_ids": "[]",
    "agent_ids": "[]",
    "action": "require_sync",
    "approver_roles": ["admin"],
    "required_approvals": "2",
    "segregation_of_duties": "on",
    "timeout_seconds": "900",
    "timeout_action": "deny",
    "escalation_timeout_seconds": "",
    "escalation_timeout_action": "deny",
}


def test_a_super_admin_adds_a_policy_and_the_journal_names_them(acme: Workspace, superuser: Any) -> None:
    response = admin_client(superuser).post("/w/acme/admin/approvals/policy/add/", POLICY_FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    with workspace_schema(acme):
        policy = Policy.objects.get(name="admin-made policy")
        assert policy.conditions == [{"path": "amount", "op": "gt", "value": 500}]
        assert policy.approver_roles == ["admin"] and policy.required_approvals == 2
        entry = journal("policy.created")[-1]
    assert entry.actor_label == "root" and entry.payload["name"] == "admin-made policy"


def test_an_admin_edit_is_journaled_with_its_changes(acme: Workspace, superuser: Any) -> None:
    with workspace_schema(acme):
        policy = make_policy(name="to edit", tool_pattern="refund", action="require_sync", approver_roles=["admin"])
    form = {**POLICY_FORM, "name": "to edit", "priority": "3", "required_approvals": "1"}
    response = admin_client(superuser).post(f"/w/acme/admin/approvals/policy/{policy.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    with workspace_schema(acme):
        entry = journal("policy.updated")[-1]
        assert Policy.objects.get(pk=policy.pk).version == 2
    assert entry.actor_label == "root" and entry.payload["changes"]["priority"] == [100, 3]


def test_an_invalid_condition_is_a_form_error_in_the_admin(acme: Workspace, superuser: Any) -> None:
    form = {**POLICY_FORM, "name": "bad one", "conditions": '[{"path": "x", "op": "roughly"}]'}
    response = admin_client(superuser).post("/w/acme/admin/approvals/policy/add/", form)
    assert response.status_code == 200 and b"op must be one of" in response.content
    with workspace_schema(acme):
        assert not Policy.objects.filter(name="bad one").exists()


def test_admin_deletion_is_journaled(acme: Workspace, superuser: Any) -> None:
    with workspace_schema(acme):
        policy = make_policy(name="to delete")
    response = admin_client(superuser).post(f"/w/acme/admin/approvals/policy/{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with workspace_schema(acme):
        assert journal("policy.deleted")[-1].actor_label == "root"


def test_requests_and_verdicts_are_read_only_in_the_admin(acme: Workspace, superuser: Any) -> None:
    with workspace_schema(acme):
        decision = gate(**call_kwargs())
    client = admin_client(superuser)
    assert client.get("/w/acme/admin/approvals/approvalrequest/").status_code == 200
    page = client.get(f"/w/acme/admin/approvals/approvalrequest/{decision.approval_request_id}/change/")
    assert page.status_code == 200 and b"send_email" in page.content and b'name="_save"' not in page.content
    assert client.get("/w/acme/admin/approvals/gateverdict/").status_code == 200
    assert client.get("/w/acme/admin/approvals/policy/add/").status_code == 200


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_new_request_posts_a_slack_compatible_webhook(
    acme: Workspace, django_capture_on_commit_callbacks: Any
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received.clear()
    try:
        acme.webhook_url = f"http://127.0.0.1:{server.server_port}/hook"
        acme.save(update_fields=["webhook_url"])  # rolled back with the test
        with workspace_schema(acme), django_capture_on_commit_callbacks(execute=True):
            gate(**call_kwargs())
    finally:
        server.shutdown()
    assert len(_Hook.received) == 1
    message = _Hook.received[0]
    assert "send_email" in message["text"] and message["blocks"][0]["type"] == "section"
    assert message["quarterdeck"]["kind"] == "approval.requested"
    assert "/w/acme/inbox/" in message["quarterdeck"]["link"]


def test_the_api_schema_documents_the_approvals_endpoints(superuser: Any) -> None:
    response = admin_client(superuser).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for path in (
        "/api/v1/approvals/policies/",
        "/api/v1/approvals/policies/dry-run/",
        "/api/v1/approvals/requests/",
        "/api/v1/approvals/requests/{id}/decide/",
    ):
        assert path in text
