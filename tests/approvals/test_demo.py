"""The demo: seeded by ``seed_demo`` (every app's seeder), run by the real worker, the support
crew's ``send_email`` waits for Rita, the demo reviewer, and only for her."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections

from apps.approvals import demo, services
from apps.approvals.models import ApprovalRequest
from apps.core.context import user_actor
from apps.core.errors import PermissionDenied
from apps.crews.demo import DEMO_GOAL, SARAH
from apps.crews.models import Mission, MissionStatus
from apps.crews.runtime.worker import Worker
from apps.tenants.access import workspace_schema
from apps.tenants.demo import seed_demo
from apps.vault.scan import scan_workspace

from .conftest import sentinel
from .test_worker_flows import mission_status, sent, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("committed_db")]

test_runs_on_the_test_database = sentinel()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    previous = settings.CREWS_VOLUME_ROOT
    settings.CREWS_VOLUME_ROOT = tmp_path / "crews"
    running = Worker(concurrency=2, sweep_seconds=60, out=lambda line: None)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.request_stop()
        thread.join(60)
        connections.close_all()
        settings.CREWS_VOLUME_ROOT = previous


def test_the_demo_email_waits_for_rita_and_goes_out_when_she_approves(worker: Worker, personas: Any) -> None:
    workspace, _, _ = seed_demo()
    users = get_user_model().objects.in_bulk(["rita", "olivia"], field_name="username")
    rita, olivia = users["rita"], users["olivia"]
    with workspace_schema(workspace):
        mission = Mission.objects.filter(goal=DEMO_GOAL).order_by("created_at").first()
        assert mission is not None
        wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), timeout=120, what="the demo's wait")
        request = ApprovalRequest.objects.get(mission_id=mission.pk, status="pending")
        assert request.tool_name == "send_email" and request.final_arguments["to"] == [SARAH]
        assert request.policy_snapshot["name"] == demo.DEMO_POLICY
        assert request.approver_user_ids == [rita.pk] and request.approver_roles == []
        with pytest.raises(PermissionDenied):  # even the owner: the policy names Rita
            services.request_decide(
                request_id=request.pk,
                decider=services.Decider(role="owner", actor=user_actor(olivia), user_id=olivia.pk),
                decision="approve",
            )
        services.request_decide(
            request_id=request.pk,
            decider=services.Decider(role="reviewer", actor=user_actor(rita), user_id=rita.pk),
            decision="approve",
            comment="Good answer.",
        )
        wait_for(mission_status(mission, MissionStatus.COMPLETED), timeout=60, what="the demo's completion")
        assert "Re: Salesforce integration stopped syncing contacts" in sent()
    # The vault's promise after a whole demo run: no secret's plaintext in any table of the
    # workspace or the public schema, the journal included.
    assert scan_workspace(schema=workspace.schema_name) == []
