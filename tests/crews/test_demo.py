"""The demo: ``seed_demo`` seeds the Support crew and its ticket mission; the offline script
reads the ticket, looks the account up, hands over, drafts, and asks to send the email, which
waits for Rita (the approvals demo policy); once she approves, the email goes out."""

from __future__ import annotations

from typing import Any

import pytest

from apps.approvals import services as approvals
from apps.audit.models import JournalEntry
from apps.core.context import user_actor
from apps.crews.demo import DEMO_CREW, DEMO_GOAL, DEMO_TICKET, SARAH
from apps.crews.models import Mission, MissionStatus, ToolCall, ToolCallStatus
from apps.crews.runtime.worker import resolve_waits
from apps.crews.services import mission_create
from apps.tenants.access import workspace_schema
from apps.tenants.demo import seed_demo
from apps.vault.demo import DEMO_SECRETS
from apps.vault.scan import known_plaintexts, scan_workspace
from tests.crews.conftest import run_to_rest

pytestmark = [pytest.mark.slow]


@pytest.mark.django_db
def test_the_demo_scripts_are_registered() -> None:
    # Also makes pytest-django set up the test database when this module runs alone.
    from apps.llm.providers.offline import registered_scripts

    assert "crews-demo-support-ticket" in registered_scripts()


@pytest.mark.usefixtures("committed_db")
def test_the_demo_support_mission_waits_for_rita_then_sends_the_reply(mailoutbox: Any) -> None:
    workspace, _, _ = seed_demo()
    seed_demo()  # idempotent: no second crew or mission
    from django.contrib.auth import get_user_model

    rita = get_user_model().objects.get(username="rita")
    oscar = get_user_model().objects.get(username="oscar")
    with workspace_schema(workspace):
        seeded = Mission.objects.get(crew__name=DEMO_CREW, goal=DEMO_GOAL, forked_from=None)
        assert seeded.input == {"ticket": DEMO_TICKET} and seeded.created_by_user_id == oscar.pk
        # Run a mission of our own: another test may have run the seeded one already.
        mission = mission_create(crew=seeded.crew, goal=DEMO_GOAL, input=seeded.input, created_by_user=oscar)
        assert mission.crew.agents.count() == 2
        assert [a.model for a in mission.crew.agents.order_by("position")] == ["offline-small", "offline-medium"]
        mission = run_to_rest(workspace, mission)
        assert mission.status == MissionStatus.WAITING_APPROVAL, mission.error
        tools = list(ToolCall.objects.filter(mission=mission).order_by("created_at").values_list("tool", "status"))
        assert ("crm_lookup", ToolCallStatus.SUCCEEDED) in tools
        assert ("handoff", ToolCallStatus.SUCCEEDED) in tools
        assert ("write_note", ToolCallStatus.SUCCEEDED) in tools
        assert tools[-1] == ("send_email", ToolCallStatus.WAITING)
        assert [m for m in mailoutbox if SARAH in m.to] == []  # (Rita was notified by email)
        request_id = mission.waiting_on
        decider = approvals.Decider(role="reviewer", actor=user_actor(rita), user_id=rita.pk)
        approvals.request_decide(request_id=request_id, decider=decider, decision="approve", comment="Good reply.")
        assert resolve_waits(workspace=workspace) == 1
        mission = run_to_rest(workspace, mission)
        assert mission.status == MissionStatus.COMPLETED
        assert mission.result.startswith("I replied to Sarah at Acme")
        assert mission.current_agent is not None and mission.current_agent.name == "Responder"
    replies = [m for m in mailoutbox if SARAH in m.to]
    assert len(replies) == 1 and replies[0].subject == "Re: Salesforce integration stopped syncing contacts"
    # After the full run, no plaintext of the demo's secrets is anywhere in the workspace's
    # tables (the journal included) or the public ones.
    with workspace_schema(workspace):
        assert len(known_plaintexts()) >= len(DEMO_SECRETS)
        assert JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.completed").exists()
    assert scan_workspace(schema=workspace.schema_name) == []
