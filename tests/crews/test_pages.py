"""Portal pages (missions list, mission page with its live timeline) and the workspace admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.crews.models import Mission, MissionStatus
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.crews.conftest import make_crew, run_to_rest, start, unique

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _mission(acme: Workspace, **kwargs: Any) -> Mission:
    with workspace_schema(acme):
        return start(make_crew(), unique("page mission"), **kwargs)


def test_members_see_the_missions_list_and_outsiders_get_404(acme: Workspace, viewer: Any, outsider: Any) -> None:
    mission = _mission(acme)
    response = _client(viewer).get("/w/acme/missions/")
    assert response.status_code == 200
    assert mission.goal.encode() in response.content
    assert b"Start a mission" not in response.content  # viewers do not run missions
    assert _client(outsider).get("/w/acme/missions/").status_code == 404
    assert _client(outsider).get(f"/w/acme/missions/{mission.pk}/").status_code == 404


def test_the_list_filters_by_status(acme: Workspace, viewer: Any) -> None:
    queued = _mission(acme)
    with workspace_schema(acme):
        done = run_to_rest(acme, start(make_crew(), unique("finished one")))
    page = _client(viewer).get("/w/acme/missions/?status=completed").content
    assert done.goal.encode() in page and queued.goal.encode() not in page


def test_mission_page_shows_the_trajectory_and_subscribes_to_its_journal_tail(acme: Workspace, viewer: Any) -> None:
    with workspace_schema(acme):
        mission = run_to_rest(acme, start(make_crew(), unique("page")))
    response = _client(viewer).get(f"/w/acme/missions/{mission.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"/ws/w/acme/journal/?after=0&amp;mission={mission.pk}" in body
    assert "js/crews-timeline.js" in body
    assert "Checkpoints" in body and "Conversation" in body
    assert "Cancel" not in body  # finished, and viewers do not control


def test_an_operator_starts_a_mission_from_the_page(acme: Workspace, operator: Any) -> None:
    with workspace_schema(acme):
        crew = make_crew()
    goal = unique("from the page")
    response = _client(operator).post(
        "/w/acme/missions/start/", {"crew": str(crew.pk), "goal": goal, "input": '{"ticket": 1}'}
    )
    assert response.status_code == 302
    with workspace_schema(acme):
        mission = Mission.objects.get(goal=goal)
        assert mission.input == {"ticket": 1} and mission.created_by_user_id == operator.pk
    assert response["Location"] == f"/w/acme/missions/{mission.pk}/"


def test_a_viewer_cannot_start_or_control(acme: Workspace, viewer: Any) -> None:
    mission = _mission(acme)
    with workspace_schema(acme):
        crew_id = mission.crew_id
    assert _client(viewer).post("/w/acme/missions/start/", {"crew": str(crew_id), "goal": "x"}).status_code == 403
    response = _client(viewer).post(f"/w/acme/missions/{mission.pk}/control/", {"action": "cancel"})
    assert response.status_code == 403


def test_an_operator_cancels_from_the_page(acme: Workspace, operator: Any) -> None:
    mission = _mission(acme)
    response = _client(operator).post(f"/w/acme/missions/{mission.pk}/control/", {"action": "cancel"})
    assert response.status_code == 302
    with workspace_schema(acme):
        assert Mission.objects.get(pk=mission.pk).status == MissionStatus.CANCELLED


def test_workspace_admin_lists_missions_and_cancels_them(acme: Workspace, superuser: Any) -> None:
    mission = _mission(acme)
    client = _client(superuser)
    for path in ("crews/mission/", "crews/crew/", "crews/agent/", "crews/toolcall/", "crews/crmchange/"):
        assert client.get(f"/w/acme/admin/{path}").status_code == 200, path
    assert client.get(f"/w/acme/admin/crews/mission/{mission.pk}/change/").status_code == 200
    response = client.post("/w/acme/admin/crews/mission/", {"action": "cancel", "_selected_action": [str(mission.pk)]})
    assert response.status_code == 302
    with workspace_schema(acme):
        assert Mission.objects.get(pk=mission.pk).status == MissionStatus.CANCELLED
    response = client.post("/w/acme/admin/crews/mission/", {"action": "retry", "_selected_action": [str(mission.pk)]})
    with workspace_schema(acme):
        assert Mission.objects.get(pk=mission.pk).status == MissionStatus.QUEUED


def test_workspace_admin_edits_a_crew_through_the_service(acme: Workspace, superuser: Any) -> None:
    from apps.audit.models import JournalEntry

    with workspace_schema(acme):
        crew = make_crew()
        agent = crew.agents.get()
    response = _client(superuser).post(
        f"/w/acme/admin/crews/crew/{crew.pk}/change/",
        {
            "name": crew.name,
            "purpose": "Answer tickets",
            "autonomy": "strict",
            "default_model": "offline-small",
            "http_allowlist": "[]",
            "max_steps": 12,
            "max_wall_seconds": 900,
            "settings": "{}",
            "is_active": "on",
            # the agents inline (read-only rows) travels with the form
            "agents-TOTAL_FORMS": "1",
            "agents-INITIAL_FORMS": "1",
            "agents-MIN_NUM_FORMS": "0",
            "agents-MAX_NUM_FORMS": "1000",
            "agents-0-id": str(agent.pk),
            "agents-0-crew": str(crew.pk),
        },
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    with workspace_schema(acme):
        entry = JournalEntry.objects.filter(kind="crew.updated", crew_id=crew.pk).get()
        assert entry.payload["changes"]["autonomy"] == {"from": "full", "to": "strict"}
        assert entry.actor_label == superuser.username
