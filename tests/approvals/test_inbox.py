"""The inbox page /w/<slug>/inbox/ and its decide form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.approvals import services
from apps.approvals.gate import gate
from apps.approvals.models import ApprovalRequest
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import call_kwargs, decider_for

pytestmark = pytest.mark.django_db

DIFF = {"account": "Acme", "diff": [{"field": "stage", "before": "trial", "after": "customer"}]}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def open_request(workspace: Workspace, **overrides: Any) -> ApprovalRequest:
    with workspace_schema(workspace):
        decision = gate(**call_kwargs(**overrides))
        return ApprovalRequest.objects.get(pk=decision.approval_request_id)


def test_a_reviewer_sees_what_they_need_to_decide(acme: Workspace, reviewer: Any) -> None:
    request = open_request(
        acme, tool_name="crm_stage_update", arguments={"account": "Acme", "changes": {"stage": "customer"}}, diff=DIFF
    )
    response = client_for(reviewer).get("/w/acme/inbox/")
    assert response.status_code == 200
    html = response.content.decode()
    card = html[html.index(f'id="req-{request.pk}"') :]
    assert "crm_stage_update" in card
    assert "The draft is ready; sending the reply." in card  # the agent's reasoning
    assert "&quot;stage&quot;: &quot;customer&quot;" in card or '"stage": "customer"' in card  # arguments
    assert "<del>trial</del>" in card and "<ins>customer</ins>" in card  # the staged diff
    assert "$0.1235" in card  # mission cost so far (123,456 micro-USD)
    assert 'class="time-left"' in card
    assert f'action="/w/acme/inbox/{request.pk}/decide/"' in card
    assert "approvals-inbox.js" in html and 'data-ws-path="/ws/w/acme/inbox/"' in html


def test_decided_requests_show_their_history(acme: Workspace, reviewer: Any) -> None:
    request = open_request(acme)
    with workspace_schema(acme):
        services.request_decide(
            request_id=request.pk, decider=decider_for(reviewer, "reviewer"), decision="deny", comment="Not yet."
        )
    html = client_for(reviewer).get("/w/acme/inbox/").content.decode()
    decided = html[html.index('id="decided-list"') :]
    card = decided[decided.index(f'id="req-{request.pk}"') :]
    assert "Denied" in card and "Not yet." in card and "History (2)" in card


def test_the_mission_starter_sees_their_request_but_cannot_decide_it(acme: Workspace, reviewer: Any) -> None:
    request = open_request(acme, started_by_user_id=reviewer.pk)
    html = client_for(reviewer).get("/w/acme/inbox/").content.decode()
    others = html[html.index('id="pending-others"') :]
    assert f'id="req-{request.pk}"' in others
    assert f"/inbox/{request.pk}/decide/" not in html


def test_a_viewer_gets_a_read_only_inbox(acme: Workspace, viewer: Any) -> None:
    request = open_request(acme)
    response = client_for(viewer).get("/w/acme/inbox/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="req-{request.pk}"' in html and "decide/" not in html and "approvals-inbox.js" not in html


def test_a_viewer_cannot_post_a_decision(acme: Workspace, viewer: Any) -> None:
    request = open_request(acme)
    response = client_for(viewer).post(f"/w/acme/inbox/{request.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 403
    with workspace_schema(acme):
        assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_another_workspace_gets_404(acme: Workspace, outsider: Any) -> None:
    request = open_request(acme)
    client = client_for(outsider)
    assert client.get("/w/acme/inbox/").status_code == 404
    assert client.post(f"/w/acme/inbox/{request.pk}/decide/", {"decision": "approve"}).status_code == 404


def test_a_request_of_another_workspace_is_404_inside_mine(acme: Workspace, globex: Workspace, outsider: Any) -> None:
    request = open_request(acme)
    response = client_for(outsider).post(f"/w/globex/inbox/{request.pk}/decide/", {"decision": "approve"})
    assert response.status_code in (302, 404)  # redirected back with "not found", never decided
    with workspace_schema(acme):
        assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_anonymous_is_sent_to_login(personas: Any) -> None:
    response = Client().get("/w/acme/inbox/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_form_approves_and_redirects_back(acme: Workspace, reviewer: Any) -> None:
    request = open_request(acme)
    response = client_for(reviewer).post(
        f"/w/acme/inbox/{request.pk}/decide/", {"decision": "approve", "comment": "fine", "arguments": ""}
    )
    assert response.status_code == 302 and response["Location"] == f"/w/acme/inbox/#req-{request.pk}"
    with workspace_schema(acme):
        request.refresh_from_db()
    assert request.status == "approved" and request.decision_comment == "fine"


def test_edit_and_approve_from_the_page_answers_json_with_the_new_card(acme: Workspace, reviewer: Any) -> None:
    request = open_request(acme)
    edited = {**request.arguments, "body": "Hi Sarah, fixed in 4.2."}
    response = client_for(reviewer).post(
        f"/w/acme/inbox/{request.pk}/decide/",
        {"decision": "approve", "arguments": json.dumps(edited)},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "approved" and "edited by a reviewer" in body["html"]
    with workspace_schema(acme):
        request.refresh_from_db()
    assert request.edited_arguments == edited


def test_page_errors_come_back_in_the_envelope_for_the_script(acme: Workspace, reviewer: Any) -> None:
    request = open_request(acme)
    response = client_for(reviewer).post(
        f"/w/acme/inbox/{request.pk}/decide/",
        {"decision": "approve", "arguments": "{not json"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    own = open_request(acme, started_by_user_id=reviewer.pk)
    response = client_for(reviewer).post(
        f"/w/acme/inbox/{own.pk}/decide/", {"decision": "approve"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "segregation_of_duties"


def test_the_inbox_costs_the_same_queries_for_two_or_twelve_requests(acme: Workspace, reviewer: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(reviewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get("/w/acme/inbox/").status_code == 200
        return len(context)

    for _ in range(2):
        open_request(acme)
    few = count()
    for _ in range(10):
        open_request(acme)
    assert count() == few <= 20
