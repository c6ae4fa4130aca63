"""REST: crews, agents, missions (create, list, detail with trajectory, control, fork), tools."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.core.permissions import Role
from apps.crews.models import Crew, Mission, MissionControl, MissionStatus
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract, assert_envelope
from tests.conftest import key_client
from tests.crews.conftest import make_crew, run_to_rest, start, unique


class TestCrewsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/crews/"
    read_permission = "crews.view"
    write_permission = "crews.manage"
    create_payload = {"name": "Contract crew", "default_model": "offline-small"}
    wrong_type_field = ("max_steps", "many")

    def make_object(self, workspace: Workspace) -> str:
        return f"/api/v1/crews/{make_crew().pk}/"


class TestAgentsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/agents/"
    read_permission = "crews.view"
    write_permission = "crews.manage"
    create_payload = {"crew": str(uuid.uuid4()), "name": "Contract agent", "role": "helper"}
    wrong_type_field = ("tools", "crm_lookup")

    def make_object(self, workspace: Workspace) -> str:
        agent = make_crew().agents.get()
        return f"/api/v1/agents/{agent.pk}/"


class TestMissionsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/missions/"
    read_permission = "missions.view"
    write_permission = "missions.run"
    create_payload = {"crew": str(uuid.uuid4()), "goal": "contract"}
    wrong_type_field = ("max_steps", "many")

    def make_object(self, workspace: Workspace) -> str:
        return f"/api/v1/missions/{start(make_crew(), 'contract mission').pk}/?checkpoints=0"


class TestToolsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/tools/"
    read_permission = "crews.view"


pytestmark = pytest.mark.django_db


def _acme_mission(acme: Workspace, **kwargs: Any) -> Mission:
    with workspace_schema(acme):
        return start(make_crew(), kwargs.pop("goal", unique("api mission")), **kwargs)


def test_admin_creates_a_crew_and_its_agents(api_as: Any, acme: Workspace) -> None:
    client = api_as("admin")
    crew = client.post(
        "/api/v1/crews/",
        {"name": unique("Support"), "default_model": "offline-medium", "http_allowlist": ["api.example.com:443"]},
        format="json",
    )
    assert crew.status_code == 201, crew.content
    agent = client.post(
        "/api/v1/agents/",
        {"crew": crew.json()["id"], "name": "Triage", "role": "triage", "tools": ["crm_lookup", "handoff"]},
        format="json",
    )
    assert agent.status_code == 201, agent.content
    assert agent.json()["effective_model"] == "offline-medium"
    listed = client.get(f"/api/v1/agents/?crew={crew.json()['id']}").json()["results"]
    assert [a["name"] for a in listed] == ["Triage"]
    with workspace_schema(acme):
        kinds = set(JournalEntry.objects.filter(crew_id=crew.json()["id"]).values_list("kind", flat=True))
    assert {"crew.created", "agent.created"} <= kinds


def test_agent_with_an_unknown_tool_is_refused(api_as: Any, acme: Workspace) -> None:
    with workspace_schema(acme):
        crew = make_crew()
    response = api_as("admin").post(
        "/api/v1/agents/", {"crew": str(crew.pk), "name": "X", "role": "x", "tools": ["rm_rf"]}, format="json"
    )
    error = assert_envelope(response, 400, "invalid")
    assert "tools" in error["details"]


def test_operator_starts_a_mission_and_sees_its_trajectory(api_as: Any, acme: Workspace, operator: Any) -> None:
    with workspace_schema(acme):
        crew = make_crew()
    client = api_as("operator")
    response = client.post(
        "/api/v1/missions/", {"crew": str(crew.pk), "goal": unique("look up Acme"), "input": {"a": 1}}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["created_by"]["label"] == operator.username
    with workspace_schema(acme):
        mission = Mission.objects.get(pk=body["id"])
        assert mission.created_by_user_id == operator.pk
        run_to_rest(acme, mission)
    detail = client.get(f"/api/v1/missions/{body['id']}/").json()
    assert detail["status"] == "completed"
    assert detail["trajectory"]["messages"][0]["role"] == "user"
    assert detail["trajectory"]["checkpoints"], "checkpoints are listed"
    assert detail["trajectory"]["checkpoints"][-1]["step"] == detail["steps"]


def test_mission_for_a_crew_of_another_workspace_is_404(api_as: Any, globex: Workspace) -> None:
    with workspace_schema(globex):
        crew = make_crew()
    response = api_as("operator").post("/api/v1/missions/", {"crew": str(crew.pk), "goal": "x"}, format="json")
    assert_envelope(response, 404, "not_found")


def test_mission_list_filters_and_stays_within_a_query_budget(
    api_as: Any, acme: Workspace, django_assert_max_num_queries: Any
) -> None:
    with workspace_schema(acme):
        crew = make_crew()
        for n in range(5):
            start(crew, unique(f"m{n}"))
    client = api_as("viewer")
    with django_assert_max_num_queries(12):
        response = client.get(f"/api/v1/missions/?crew={crew.pk}&status=queued")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 5


@pytest.mark.parametrize("action", ["cancel", "pause", "resume", "retry", "fork"])
def test_control_endpoints_are_404_for_another_workspace(acme: Workspace, globex: Workspace, action: str) -> None:
    mission = _acme_mission(acme)
    response = key_client(globex, Role.OWNER).post(f"/api/v1/missions/{mission.pk}/{action}/", {}, format="json")
    assert_envelope(response, 404, "not_found")


@pytest.mark.parametrize("persona", ["viewer", "reviewer"])
def test_roles_without_control_cannot_cancel(api_as: Any, acme: Workspace, persona: str) -> None:
    mission = _acme_mission(acme)
    assert_envelope(api_as(persona).post(f"/api/v1/missions/{mission.pk}/cancel/"), 403, "permission_denied")


def test_cancel_of_a_queued_mission_is_immediate_and_of_a_running_one_at_its_next_step(
    api_as: Any, acme: Workspace
) -> None:
    queued = _acme_mission(acme)
    response = api_as("operator").post(f"/api/v1/missions/{queued.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    running = _acme_mission(acme)
    with workspace_schema(acme):
        Mission.objects.filter(pk=running.pk).update(status=MissionStatus.RUNNING, claimed_by="qd-worker-x")
    response = api_as("operator").post(f"/api/v1/missions/{running.pk}/cancel/")
    assert response.json()["status"] == "running" and response.json()["control"] == MissionControl.CANCEL
    again = api_as("operator").post(f"/api/v1/missions/{queued.pk}/cancel/")
    assert_envelope(again, 409, "mission_finished")


def test_fork_needs_a_checkpoint_and_takes_one_point(api_as: Any, acme: Workspace) -> None:
    mission = _acme_mission(acme)
    client = api_as("operator")
    assert_envelope(client.post(f"/api/v1/missions/{mission.pk}/fork/", {}, format="json"), 400, "no_checkpoint")
    both = client.post(f"/api/v1/missions/{mission.pk}/fork/", {"step": 1, "from_seq": 3}, format="json")
    assert_envelope(both, 400, "invalid")


def test_tools_list_describes_each_tool(api_as: Any) -> None:
    tools = {t["name"]: t for t in api_as("viewer").get("/api/v1/tools/").json()}
    assert {"send_email", "http_request", "crm_stage_update", "crm_lookup", "write_note", "handoff"} <= set(tools)
    assert tools["send_email"]["side_effects"] is True
    assert tools["send_email"]["parameters"]["required"] == ["to", "subject", "body"]


def test_crew_update_is_journaled_with_its_changes(api_as: Any, acme: Workspace) -> None:
    with workspace_schema(acme):
        crew = make_crew()
    response = api_as("admin").patch(f"/api/v1/crews/{crew.pk}/", {"max_steps": 7}, format="json")
    assert response.status_code == 200 and response.json()["max_steps"] == 7
    with workspace_schema(acme):
        entry = JournalEntry.objects.filter(kind="crew.updated", crew_id=crew.pk).get()
        assert entry.payload["changes"] == {"max_steps": {"from": 30, "to": 7}}
        assert Crew.objects.get(pk=crew.pk).max_steps == 7
