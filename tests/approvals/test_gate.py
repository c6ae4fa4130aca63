"""The gate the runtime calls: its answers, its records, and idempotency per tool call."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection

from apps.approvals import gate as gate_module
from apps.approvals import services
from apps.approvals.gate import gate, mission_outcomes, request_outcome
from apps.approvals.models import ApprovalEvent, ApprovalRequest, GateVerdict, Policy
from apps.core.errors import NotFound, ValidationFailed
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import call_kwargs, decider_for, journal, make_policy

db = pytest.mark.django_db


@db
@pytest.mark.usefixtures("in_acme")
class TestAnswers:
    def test_no_policy_and_full_autonomy_allows(self) -> None:
        decision = gate(**call_kwargs(autonomy_level="full"))
        assert decision.action == "allow" and decision.runs_now
        assert decision.approval_request_id is None and decision.source == "autonomy"

    def test_deny_policy_denies_with_a_reason_and_journals_it(self) -> None:
        policy = make_policy(
            name="no external mail", action="deny", conditions=[{"path": "to", "op": "outside_domains"}]
        )
        kwargs = call_kwargs(autonomy_level="full")
        decision = gate(**kwargs)
        assert decision.action == "deny"
        assert decision.policy_id == policy.pk and decision.policy_name == "no external mail"
        assert "sarah@customer.example" in decision.reason
        entry = journal("approval.denied_by_policy")[-1]
        assert entry.payload["arguments"] == kwargs["arguments"]
        assert entry.mission_id == kwargs["mission_id"]

    def test_sync_policy_waits_with_a_request_holding_everything_a_reviewer_needs(self) -> None:
        policy = make_policy(action="require_sync", approver_roles=["reviewer"], timeout_seconds=600)
        kwargs = call_kwargs(diff={"diff": [{"field": "stage", "before": "trial", "after": "customer"}]})
        decision = gate(**kwargs)
        assert decision.action == "wait"
        request = ApprovalRequest.objects.get(pk=decision.approval_request_id)
        assert request.mode == "sync" and request.status == "pending"
        assert request.arguments == kwargs["arguments"]
        assert request.reasoning == kwargs["reasoning"]
        assert request.diff == kwargs["diff"]
        assert request.mission_cost_microusd == 123_456
        assert request.crew_name == "Support" and request.agent_name == "responder"
        assert request.policy_id == policy.pk and request.policy_snapshot["version"] == 1
        assert request.approver_roles == ["reviewer"]
        assert 590 < (request.deadline - request.created_at).total_seconds() <= 600  # type: ignore[operator]
        assert ApprovalEvent.objects.filter(request=request, kind="requested").count() == 1
        entry = journal("approval.requested")[-1]
        assert entry.payload["request_id"] == str(request.pk)
        assert entry.payload["arguments"] == kwargs["arguments"]
        assert entry.payload["policy_name"] == policy.name

    def test_async_policy_queues(self) -> None:
        make_policy(action="require_async")
        decision = gate(**call_kwargs())
        assert decision.action == "queue"
        assert ApprovalRequest.objects.get(pk=decision.approval_request_id).mode == "async"

    def test_bad_input_is_refused(self) -> None:
        with pytest.raises(ValidationFailed):
            gate(**call_kwargs(arguments=["not", "a", "dict"]))
        with pytest.raises(ValidationFailed):
            gate(**call_kwargs(mission_id="nope"))
        with pytest.raises(ValidationFailed):
            gate(**call_kwargs(tool_call_id=""))


@db
@pytest.mark.usefixtures("in_acme")
class TestIdempotency:
    def test_asking_twice_returns_the_same_request_never_a_duplicate(self) -> None:
        kwargs = call_kwargs()
        first = gate(**kwargs)
        second = gate(**kwargs)
        assert first == second and first.action == "wait"
        assert ApprovalRequest.objects.filter(mission_id=kwargs["mission_id"]).count() == 1
        assert GateVerdict.objects.filter(mission_id=kwargs["mission_id"]).count() == 1
        assert len([e for e in journal("approval.requested") if e.mission_id == kwargs["mission_id"]]) == 1

    def test_the_same_tool_call_id_in_another_mission_is_another_call(self) -> None:
        kwargs = call_kwargs(tool_call_id="call_1")
        first = gate(**kwargs)
        second = gate(**{**kwargs, "mission_id": uuid.uuid4()})
        assert first.approval_request_id != second.approval_request_id

    def test_a_denial_sticks_even_if_the_policy_is_removed(self) -> None:
        policy = make_policy(action="deny")
        kwargs = call_kwargs(autonomy_level="full")
        assert gate(**kwargs).action == "deny"
        services.policy_delete(policy=policy)
        assert gate(**kwargs).action == "deny"
        assert gate(**{**kwargs, "tool_call_id": "fresh"}).action == "allow"

    def test_after_resume_the_gate_still_names_the_request_and_the_outcome_says_approved(self, reviewer: Any) -> None:
        kwargs = call_kwargs()
        decision = gate(**kwargs)
        services.request_decide(
            request_id=decision.approval_request_id,  # type: ignore[arg-type]
            decider=decider_for(reviewer, "reviewer"),
            decision="approve",
        )
        again = gate(**kwargs)  # the node re-runs from its top after Command(resume=...)
        assert again.approval_request_id == decision.approval_request_id
        assert request_outcome(again.approval_request_id).status == "approved"  # type: ignore[arg-type]


@pytest.mark.usefixtures("committed_db")
def test_concurrent_gates_for_one_tool_call_create_one_request(acme: Workspace) -> None:
    kwargs = call_kwargs(crew_id=uuid.uuid4())
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            with workspace_schema(acme):
                barrier.wait()
                results.append(gate(**kwargs))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len({r.approval_request_id for r in results}) == 1
    with workspace_schema(acme):
        assert ApprovalRequest.objects.filter(mission_id=kwargs["mission_id"]).count() == 1
        services.requests_cancel_for_mission(mission_id=kwargs["mission_id"])


@db
@pytest.mark.usefixtures("in_acme")
class TestOutcomes:
    def test_pending(self) -> None:
        decision = gate(**call_kwargs())
        outcome = request_outcome(decision.approval_request_id)  # type: ignore[arg-type]
        assert outcome.status == "pending" and not outcome.is_final

    def test_denied_carries_the_reviewers_comment_for_the_model(self, reviewer: Any) -> None:
        decision = gate(**call_kwargs())
        services.request_decide(
            request_id=decision.approval_request_id,  # type: ignore[arg-type]
            decider=decider_for(reviewer, "reviewer"),
            decision="deny",
            comment="Do not promise a refund.",
        )
        outcome = request_outcome(decision.approval_request_id)  # type: ignore[arg-type]
        assert outcome.status == "denied" and outcome.comment == "Do not promise a refund."
        assert "Do not promise a refund." in outcome.message and outcome.decided_by == "acme-reviewer"
        assert outcome.as_resume()["status"] == "denied"

    def test_cancelled_requests_read_as_denied(self) -> None:
        kwargs = call_kwargs()
        decision = gate(**kwargs)
        assert gate_module.cancel_mission_requests(kwargs["mission_id"]) == 1
        outcome = request_outcome(decision.approval_request_id)  # type: ignore[arg-type]
        assert outcome.status == "denied" and outcome.cancelled
        assert journal("approval.cancelled")[-1].payload["request_id"] == str(decision.approval_request_id)

    def test_mission_outcomes_lists_approved_async_calls_not_yet_run(self, reviewer: Any) -> None:
        make_policy(action="require_async")
        kwargs = call_kwargs()
        decision = gate(**kwargs)
        services.request_decide(
            request_id=decision.approval_request_id,  # type: ignore[arg-type]
            decider=decider_for(reviewer, "reviewer"),
            decision="approve",
        )
        ready = [
            o for o in mission_outcomes(kwargs["mission_id"], mode="async", unexecuted=True) if o.status == "approved"
        ]
        assert [o.request_id for o in ready] == [decision.approval_request_id]
        assert gate_module.mark_executed(decision.approval_request_id, ok=True) is True  # type: ignore[arg-type]
        assert gate_module.mark_executed(decision.approval_request_id, ok=True) is False  # type: ignore[arg-type]
        assert mission_outcomes(kwargs["mission_id"], unexecuted=True) == []
        assert journal("approval.executed")[-1].payload["ok"] is True

    def test_unknown_request(self) -> None:
        with pytest.raises(NotFound):
            request_outcome(uuid.uuid4())


@db
def test_the_gate_needs_a_workspace_schema() -> None:
    from apps.core.errors import GovernanceUnavailable

    assert Policy.objects.model._meta.app_label == "approvals"
    with pytest.raises(GovernanceUnavailable):
        gate(**call_kwargs())
