"""The runtime's wake-up: pg_notify('quarterdeck_wake', ...) delivered when a resolution commits."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from apps.approvals import services
from apps.approvals.gate import WAKE_CHANNEL, gate
from apps.approvals.models import ApprovalRequest
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import call_kwargs, decider_for, sentinel

test_runs_on_the_test_database = sentinel()


def decide(request: ApprovalRequest, user: Any, role: str, decision: str) -> ApprovalRequest:
    return services.request_decide(request_id=request.pk, decider=decider_for(user, role), decision=decision)  # type: ignore[arg-type]


def wake_listener() -> psycopg.Connection[Any]:
    """A separate connection LISTENing like the runtime's worker (to the test database)."""
    db = connection.settings_dict
    listener = psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"], autocommit=True
    )
    listener.execute(f"LISTEN {WAKE_CHANNEL}")
    return listener


@pytest.mark.usefixtures("committed_db")
def test_a_decision_wakes_the_runtime_through_pg_notify_at_commit(acme: Workspace, reviewer: Any) -> None:
    listener = wake_listener()
    try:
        with workspace_schema(acme):
            kwargs = call_kwargs(crew_id=uuid.uuid4())
            decision = gate(**kwargs)
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []  # nothing on request
            decide(ApprovalRequest.objects.get(pk=decision.approval_request_id), reviewer, "reviewer", "approve")
        notes = list(listener.notifies(timeout=5, stop_after=1))
        assert len(notes) == 1
        payload = json.loads(notes[0].payload)
        assert payload == {
            "schema": "w_acme",
            "mission_id": str(kwargs["mission_id"]),
            "approval_request_id": str(decision.approval_request_id),
            "tool_call_id": kwargs["tool_call_id"],
            "status": "approved",
            "mode": "sync",
        }
    finally:
        listener.close()


@pytest.mark.usefixtures("committed_db")
def test_a_decision_that_rolls_back_wakes_nobody(acme: Workspace, reviewer: Any) -> None:
    listener = wake_listener()
    try:
        with workspace_schema(acme):
            decision = gate(**call_kwargs(crew_id=uuid.uuid4()))
            request = ApprovalRequest.objects.get(pk=decision.approval_request_id)
            with pytest.raises(RuntimeError), transaction.atomic():
                decide(request, reviewer, "reviewer", "approve")
                raise RuntimeError("the surrounding work failed")
            assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
            assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"
            services.requests_cancel_for_mission(mission_id=request.mission_id)
    finally:
        listener.close()
