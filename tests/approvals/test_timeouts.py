"""Timeouts: each timeout action, escalation with its own timeout, and the sweep."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.approvals import services
from apps.approvals.gate import gate, request_outcome, sweep_timeouts
from apps.approvals.models import ApprovalRequest
from apps.core.errors import PermissionDenied
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import call_kwargs, decider_for, journal, make_policy

LATER = timedelta(hours=2)


def open_request(**overrides: Any) -> ApprovalRequest:
    decision = gate(**call_kwargs(**overrides))
    return ApprovalRequest.objects.get(pk=decision.approval_request_id)


@pytest.mark.django_db
@pytest.mark.usefixtures("in_acme")
class TestTimeoutActions:
    def test_deny(self) -> None:
        make_policy(action="require_sync", timeout_seconds=60, timeout_action="deny")
        request = open_request()
        report = services.requests_sweep(now=timezone.now() + timedelta(seconds=61))
        assert report.timed_out == 1
        outcome = request_outcome(request.pk)
        assert outcome.status == "denied" and outcome.timed_out
        entry = journal("approval.timed_out")[-1]
        assert entry.payload["action"] == "deny" and entry.actor_kind == "system"

    def test_approve(self) -> None:
        make_policy(action="require_sync", timeout_seconds=60, timeout_action="approve")
        request = open_request()
        services.requests_sweep(now=timezone.now() + timedelta(seconds=61))
        outcome = request_outcome(request.pk)
        assert outcome.status == "approved" and outcome.timed_out and outcome.arguments == request.arguments

    def test_nothing_happens_before_the_deadline(self) -> None:
        make_policy(action="require_sync", timeout_seconds=60)
        request = open_request()
        report = services.requests_sweep(now=timezone.now() + timedelta(seconds=30))
        assert report.timed_out == 0 and report.next_deadline == request.deadline
        assert request_outcome(request.pk).status == "pending"

    def test_escalate_to_another_role_with_a_new_timeout_then_the_final_action(
        self, reviewer: Any, admin_user: Any
    ) -> None:
        make_policy(
            action="require_sync",
            approver_roles=["reviewer"],
            timeout_seconds=60,
            timeout_action="escalate",
            escalate_to_roles=["admin"],
            escalation_timeout_seconds=300,
            escalation_timeout_action="deny",
        )
        request = open_request()
        first = timezone.now() + timedelta(seconds=61)
        report = services.requests_sweep(now=first)
        assert report.escalated == 1 and report.timed_out == 0
        request.refresh_from_db()
        assert request.status == "pending" and request.escalation_level == 1
        assert request.approver_roles == ["admin", "reviewer"]
        assert request.deadline == first + timedelta(seconds=300)
        entry = journal("approval.escalated")[-1]
        assert entry.payload["to_roles"] == ["admin"]
        # no second escalation: at the new deadline the final action applies
        services.requests_sweep(now=first + timedelta(seconds=301))
        outcome = request_outcome(request.pk)
        assert outcome.status == "denied" and outcome.timed_out

    def test_after_escalation_the_new_role_may_decide(self, admin_user: Any) -> None:
        make_policy(
            action="require_sync",
            approver_roles=["reviewer"],
            timeout_seconds=60,
            timeout_action="escalate",
            escalate_to_roles=["admin"],
            escalation_timeout_seconds=300,
        )
        request = open_request()
        with pytest.raises(PermissionDenied):
            services.request_decide(request_id=request.pk, decider=decider_for(admin_user, "admin"), decision="approve")
        services.requests_sweep(now=timezone.now() + timedelta(seconds=61))
        decided = services.request_decide(
            request_id=request.pk, decider=decider_for(admin_user, "admin"), decision="approve"
        )
        assert decided.status == "approved"

    def test_a_decided_request_never_times_out(self, reviewer: Any) -> None:
        make_policy(action="require_sync", timeout_seconds=60, timeout_action="approve")
        request = open_request()
        services.request_decide(request_id=request.pk, decider=decider_for(reviewer, "reviewer"), decision="deny")
        assert services.requests_sweep(now=timezone.now() + LATER).timed_out == 0
        assert request_outcome(request.pk).status == "denied"


@pytest.mark.usefixtures("committed_db")
def test_the_worker_sweep_covers_every_workspace(acme: Workspace, globex: Workspace) -> None:
    crew = str(uuid.uuid4())
    requests = {}
    for workspace in (acme, globex):
        with workspace_schema(workspace):
            policy = services.policy_create(
                fields={
                    "name": f"sweep {crew[:8]}",
                    "crew_ids": [crew],
                    "action": "require_sync",
                    "timeout_seconds": 60,
                    "timeout_action": "deny",
                }
            )
            requests[workspace.slug] = (open_request(crew_id=crew), policy)
    try:
        report = sweep_timeouts(now=timezone.now() + timedelta(seconds=61))
        assert report.timed_out >= 2 and report.workspaces >= 2 and not report.errors
        for workspace in (acme, globex):
            with workspace_schema(workspace):
                assert request_outcome(requests[workspace.slug][0].pk).timed_out
    finally:
        for workspace in (acme, globex):
            with workspace_schema(workspace):
                services.policy_delete(policy=requests[workspace.slug][1])


@pytest.mark.usefixtures("committed_db")
def test_approvals_sweep_command_prints_its_report_as_json(acme: Workspace) -> None:
    out = io.StringIO()
    call_command("approvals_sweep", stdout=out)
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(report) == {"timed_out", "escalated", "workspaces", "next_deadline", "errors"}
    assert report["errors"] == []


@pytest.mark.usefixtures("committed_db")
def test_a_request_being_decided_is_skipped_by_the_sweep(acme: Workspace) -> None:
    """SKIP LOCKED: the sweep leaves a request a reviewer holds right now to the reviewer."""
    import threading

    from django.db import connection, transaction

    crew = str(uuid.uuid4())
    with workspace_schema(acme):
        policy = services.policy_create(
            fields={"name": f"skip {crew[:8]}", "crew_ids": [crew], "action": "require_sync", "timeout_seconds": 60}
        )
        request = open_request(crew_id=crew)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with workspace_schema(acme), transaction.atomic():
            ApprovalRequest.objects.select_for_update().get(pk=request.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        with workspace_schema(acme):
            report = services.requests_sweep(now=timezone.now() + timedelta(seconds=61))
            assert report.timed_out == 0
    finally:
        release.set()
        holder.join()
    with workspace_schema(acme):
        assert services.requests_sweep(now=timezone.now() + timedelta(seconds=61)).timed_out >= 1
        services.policy_delete(policy=policy)
