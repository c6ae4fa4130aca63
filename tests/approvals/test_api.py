"""REST: policies (with the dry run) and requests (list, detail, decide)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.approvals.gate import gate
from apps.approvals.models import ApprovalRequest, Policy
from apps.core.permissions import Role
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract, assert_envelope
from tests.conftest import key_client

from .conftest import call_kwargs, journal, make_policy


def open_request(workspace: Workspace, **overrides: Any) -> ApprovalRequest:
    with workspace_schema(workspace):
        decision = gate(**call_kwargs(**overrides))
        return ApprovalRequest.objects.get(pk=decision.approval_request_id)


class TestPoliciesApi(WorkspaceEndpointContract):
    list_url = "/api/v1/approvals/policies/"
    read_permission = "approvals.view"
    write_permission = "policies.manage"
    create_payload = {"name": "refunds over 500", "tool_pattern": "refund", "action": "require_sync"}
    wrong_type_field = ("priority", "high")

    def make_object(self, workspace: Workspace) -> str:
        return f"{self.list_url}{make_policy().pk}/"

    def test_admin_creates_a_policy_and_the_journal_names_them(self, api_as: Any, acme: Workspace) -> None:
        payload = {
            "name": "prod deploys",
            "tool_pattern": "deploy|release_*",
            "conditions": [{"path": "env", "op": "eq", "value": "prod"}],
            "action": "require_sync",
            "approver_roles": ["admin"],
            "required_approvals": 2,
            "timeout_seconds": 900,
            "timeout_action": "escalate",
            "escalate_to_roles": ["owner"],
            "escalation_timeout_seconds": 600,
        }
        response = api_as("admin").post(self.list_url, payload, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["required_approvals"] == 2 and body["version"] == 1 and body["updated_by"] == "acme-admin"
        with workspace_schema(acme):
            entry = journal("policy.created")[-1]
        assert entry.actor_label == "acme-admin" and entry.payload["name"] == "prod deploys"

    def test_patch_changes_only_what_is_sent_and_is_journaled(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            policy = make_policy(action="require_sync")
        response = api_as("owner").patch(f"{self.list_url}{policy.pk}/", {"priority": 3}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["priority"] == 3 and response.json()["version"] == 2
        with workspace_schema(acme):
            assert journal("policy.updated")[-1].payload["changes"] == {"priority": [100, 3]}
            assert journal("policy.updated")[-1].actor_label == "acme-owner"

    def test_delete(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            policy = make_policy()
        assert api_as("admin").delete(f"{self.list_url}{policy.pk}/").status_code == 204
        with workspace_schema(acme):
            assert not Policy.objects.filter(pk=policy.pk).exists()

    def test_an_invalid_combination_is_a_field_error(self, api_as: Any) -> None:
        payload = {"name": "bad", "action": "require_sync", "timeout_action": "escalate"}
        error = assert_envelope(api_as("admin").post(self.list_url, payload, format="json"), 400, "invalid")
        assert "escalate_to_roles" in error["details"]

    def test_an_invalid_condition_is_a_field_error(self, api_as: Any) -> None:
        payload = {"name": "bad", "conditions": [{"path": "x", "op": "approximately", "value": 1}]}
        error = assert_envelope(api_as("admin").post(self.list_url, payload, format="json"), 400, "invalid")
        assert "conditions" in error["details"]

    def test_list_stays_within_a_query_budget(
        self, api_as: Any, acme: Workspace, django_assert_max_num_queries: Any
    ) -> None:
        with workspace_schema(acme):
            for _ in range(5):
                make_policy()
        client = api_as("viewer")
        with django_assert_max_num_queries(8):
            assert client.get(self.list_url).status_code == 200


@pytest.mark.django_db
class TestDryRun:
    url = "/api/v1/approvals/policies/dry-run/"

    def test_explains_which_policy_matches_and_why(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            make_policy(
                name="internal mail ok", priority=1, conditions=[{"path": "to", "op": "exists"}], action="allow"
            )
            make_policy(
                name="external mail",
                priority=0,
                conditions=[{"path": "to", "op": "outside_domains"}],
                action="require_sync",
            )
        response = api_as("viewer").post(
            self.url,
            {"tool_name": "send_email", "arguments": {"to": ["x@elsewhere.example"]}, "autonomy_level": "trusted"},
            format="json",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["gate_action"] == "wait" and body["source"] == "policy"
        assert body["policy"]["name"] == "external mail"
        assert "x@elsewhere.example outside the workspace's domains (acme.test)" in body["reason"]
        assert [(t["name"], t["matched"]) for t in body["trace"]] == [
            ("external mail", True),
            ("internal mail ok", True),
        ]
        assert body["approval"]["mode"] == "sync"

    def test_without_a_matching_policy_it_names_the_autonomy_default(self, api_as: Any) -> None:
        response = api_as("viewer").post(
            self.url, {"tool_name": "crm_lookup", "has_side_effects": False, "autonomy_level": "strict"}, format="json"
        )
        body = response.json()
        assert body["gate_action"] == "allow" and body["source"] == "autonomy" and body["policy"] is None
        assert "no side effects" in body["reason"]

    def test_bad_input_gets_the_envelope(self, api_as: Any) -> None:
        error = assert_envelope(
            api_as("viewer").post(self.url, {"tool_name": "x", "autonomy_level": "reckless"}, format="json"), 400
        )
        assert "autonomy_level" in error["details"]

    def test_another_workspaces_user_gets_404(self, personas: Any) -> None:
        from tests.conftest import session_client

        client = session_client(personas.users["outsider"], personas.acme)
        assert_envelope(client.post(self.url, {"tool_name": "x"}, format="json"), 404, "not_found")


class TestRequestsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/approvals/requests/"
    read_permission = "approvals.view"

    def make_object(self, workspace: Workspace) -> str:
        decision = gate(**call_kwargs())
        return f"{self.list_url}{decision.approval_request_id}/"

    def test_detail_has_arguments_reasoning_policy_and_history(self, api_as: Any, acme: Workspace) -> None:
        request = open_request(acme, diff={"diff": [{"field": "stage", "before": "trial", "after": "customer"}]})
        body = api_as("viewer").get(f"{self.list_url}{request.pk}/").json()
        assert body["arguments"] == request.arguments and body["reasoning"] == request.reasoning
        assert body["diff"]["diff"][0]["after"] == "customer"
        assert body["mission_cost_microusd"] == 123_456
        assert [e["kind"] for e in body["events"]] == ["requested"]

    def test_filters(self, api_as: Any, acme: Workspace, reviewer: Any) -> None:
        mine = open_request(acme)
        own_mission = open_request(acme, started_by_user_id=reviewer.pk)
        client = api_as("reviewer")
        ids = {r["id"] for r in client.get(self.list_url, {"status": "pending", "decidable": "1"}).json()["results"]}
        assert str(mine.pk) in ids and str(own_mission.pk) not in ids  # segregation of duties
        by_mission = client.get(self.list_url, {"mission_id": str(mine.mission_id)}).json()["results"]
        assert [r["id"] for r in by_mission] == [str(mine.pk)]
        assert_envelope(client.get(self.list_url, {"status": "maybe"}), 400, "invalid")

    def test_list_stays_within_a_query_budget(
        self, api_as: Any, acme: Workspace, django_assert_max_num_queries: Any
    ) -> None:
        for _ in range(5):
            open_request(acme)
        client = api_as("viewer")
        with django_assert_max_num_queries(8):
            assert client.get(self.list_url).status_code == 200


@pytest.mark.django_db
class TestDecideApi:
    def url(self, request: ApprovalRequest) -> str:
        return f"/api/v1/approvals/requests/{request.pk}/decide/"

    def test_a_reviewer_approves_with_edited_arguments(self, api_as: Any, acme: Workspace) -> None:
        request = open_request(acme)
        edited = {**request.arguments, "subject": "Re: your question"}
        response = api_as("reviewer").post(
            self.url(request), {"decision": "approve", "comment": "ok", "arguments": edited}, format="json"
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["status"] == "approved" and body["edited_arguments"] == edited
        assert body["decided_by_label"] == "acme-reviewer"
        assert [e["kind"] for e in body["events"]] == ["requested", "approve"]

    def test_an_integration_denies_with_an_api_key(self, acme: Workspace) -> None:
        request = open_request(acme)
        client = key_client(acme, Role.REVIEWER)
        response = client.post(self.url(request), {"decision": "deny", "comment": "no"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "denied"
        assert response.json()["decided_by_label"].startswith("api key")

    def test_a_viewer_cannot_decide(self, api_as: Any, acme: Workspace) -> None:
        request = open_request(acme)
        response = api_as("viewer").post(self.url(request), {"decision": "approve"}, format="json")
        assert_envelope(response, 403, "permission_denied")
        with workspace_schema(acme):
            assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"

    def test_an_operator_cannot_decide(self, api_as: Any, acme: Workspace) -> None:
        request = open_request(acme)
        assert_envelope(api_as("operator").post(self.url(request), {"decision": "approve"}, format="json"), 403)

    def test_segregation_of_duties_is_a_403_with_its_own_code(
        self, api_as: Any, acme: Workspace, reviewer: Any
    ) -> None:
        request = open_request(acme, started_by_user_id=reviewer.pk)
        response = api_as("reviewer").post(self.url(request), {"decision": "approve"}, format="json")
        assert_envelope(response, 403, "segregation_of_duties")

    def test_another_workspaces_user_and_key_get_404(self, personas: Any, acme: Workspace, globex: Workspace) -> None:
        from tests.conftest import session_client

        request = open_request(acme)
        outsider = session_client(personas.users["outsider"], acme)
        assert_envelope(outsider.post(self.url(request), {"decision": "approve"}, format="json"), 404, "not_found")
        globex_key = key_client(globex, Role.OWNER)
        assert_envelope(globex_key.post(self.url(request), {"decision": "approve"}, format="json"), 404, "not_found")
        with workspace_schema(acme):
            assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"

    def test_deciding_twice_is_a_409(self, api_as: Any, acme: Workspace) -> None:
        request = open_request(acme)
        assert api_as("reviewer").post(self.url(request), {"decision": "deny"}, format="json").status_code == 200
        response = api_as("reviewer2").post(self.url(request), {"decision": "approve"}, format="json")
        assert_envelope(response, 409, "already_decided")

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"decision": "maybe"}, "decision"),
            ({"decision": "approve", "arguments": "not an object"}, "arguments"),
            ({"decision": "approve", "surprise": 1}, "surprise"),
        ],
    )
    def test_bad_input_gets_the_envelope(self, api_as: Any, acme: Workspace, payload: Any, field: str) -> None:
        request = open_request(acme)
        error = assert_envelope(api_as("reviewer").post(self.url(request), payload, format="json"), 400, "invalid")
        assert field in error["details"]

    def test_unknown_request_is_404(self, api_as: Any) -> None:
        response = api_as("reviewer").post(
            "/api/v1/approvals/requests/00000000-0000-0000-0000-000000000001/decide/",
            {"decision": "approve"},
            format="json",
        )
        assert_envelope(response, 404, "not_found")
