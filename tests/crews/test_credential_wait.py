"""A tool that needs an L4 secret makes the mission wait for the person who approves that use
(the Keeper's approval request), like an approval gate: nothing runs meanwhile; approved, the
call runs with the credential; denied, it fails and the model hears why."""

from __future__ import annotations

from typing import Any

import pytest

from apps.approvals import services as approvals
from apps.audit.models import JournalEntry
from apps.core.context import user_actor
from apps.crews.models import MissionStatus, ToolCall, ToolCallStatus
from apps.crews.runtime.worker import resolve_waits
from apps.llm.providers.offline import ScriptToolCall, ScriptTurn
from tests.crews.conftest import make_crew, run_to_rest, start, unique
from tests.vault.conftest import make_grant, make_secret

pytestmark = pytest.mark.django_db

SECRET_VALUE = "prod-token-l4-" + "7" * 24


def _mission(in_acme: Any, script: Any, operator: Any, api: Any) -> Any:
    port = api.server_address[1]
    secret = make_secret(tier="L4", value=SECRET_VALUE)
    marker = script(
        unique("[l4]"),
        [
            ScriptTurn(
                text="Checking the production API.",
                tool_calls=[
                    ScriptToolCall(
                        "http_request",
                        {"method": "POST", "url": f"http://127.0.0.1:{port}/restart", "credential": secret.name},
                    )
                ],
            ),
            ScriptTurn(text="Finished."),
        ],
    )
    crew = make_crew(tools=["http_request"], http_allowlist=[f"127.0.0.1:{port}"], autonomy="full")
    make_grant(secret, crew_id=crew.pk)
    mission = run_to_rest(in_acme, start(crew, f"{marker} check", created_by_user=operator))
    assert mission.status == MissionStatus.WAITING_APPROVAL, list(
        ToolCall.objects.filter(mission=mission).values_list("status", "error")
    )
    return mission


def _decide(request_id: str, reviewer: Any, decision: str) -> None:
    decider = approvals.Decider(role="reviewer", actor=user_actor(reviewer), user_id=reviewer.pk)
    approvals.request_decide(request_id=request_id, decider=decider, decision=decision, comment="checked")


def test_an_l4_credential_makes_the_mission_wait_then_the_call_runs_with_it(
    in_acme: Any, script: Any, operator: Any, reviewer: Any, api_server: Any
) -> None:
    mission = _mission(in_acme, script, operator, api_server)
    call = ToolCall.objects.get(mission=mission)
    assert call.status == ToolCallStatus.WAITING and mission.waiting_on
    assert api_server.seen == []  # nothing was sent while it waits
    waiting = JournalEntry.objects.get(mission_id=mission.pk, kind="mission.waiting")
    assert waiting.payload["reason"] == "credential"
    assert waiting.payload["approval_request_id"] == mission.waiting_on
    assert resolve_waits(workspace=in_acme) == 0  # undecided

    _decide(mission.waiting_on, reviewer, "approve")
    assert resolve_waits(workspace=in_acme) == 1
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED and mission.result == "Finished."
    call.refresh_from_db()
    assert call.status == ToolCallStatus.SUCCEEDED
    (sent,) = api_server.seen  # exactly one request, with the credential
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET_VALUE}"
    assert SECRET_VALUE not in str(call.result)


def test_a_denied_l4_credential_fails_the_call_and_nothing_is_sent(
    in_acme: Any, script: Any, operator: Any, reviewer: Any, api_server: Any
) -> None:
    mission = _mission(in_acme, script, operator, api_server)
    _decide(mission.waiting_on, reviewer, "deny")
    assert resolve_waits(workspace=in_acme) == 1
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED
    call = ToolCall.objects.get(mission=mission)
    assert call.status == ToolCallStatus.FAILED and "refused" in call.error
    assert api_server.seen == []
    assert "refused" in mission.messages.get(role="tool").content
