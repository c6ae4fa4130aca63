"""The mission graph end to end on the offline provider, through the real gateway."""

from __future__ import annotations

from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.crews.models import Mission, MissionMessage, MissionStatus, ToolCall, ToolCallStatus
from apps.llm.providers.offline import ScriptToolCall, ScriptTurn
from tests.crews.conftest import handle, make_crew, run_to_rest, start, unique

pytestmark = pytest.mark.django_db


def test_mission_runs_tools_and_completes(in_acme: Any, script: Any) -> None:
    marker = unique("[e2e]")
    script(
        marker,
        [
            ScriptTurn(text="Looking it up.", tool_calls=[ScriptToolCall("crm_lookup", {"query": "Acme"})]),
            ScriptTurn(
                text="Writing it down.",
                tool_calls=[ScriptToolCall("write_note", {"filename": "a.txt", "content": "hi"})],
            ),
            ScriptTurn(text="All done."),
        ],
    )
    crew = make_crew()
    mission = start(crew, f"{marker} look up Acme")
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED, mission.error
    assert mission.result == "All done."
    assert mission.steps == 5
    assert mission.model_calls == 3
    assert mission.cost_micros > 0
    calls = list(ToolCall.objects.filter(mission=mission).order_by("created_at"))
    assert [c.tool for c in calls] == ["crm_lookup", "write_note"]
    assert all(c.status == ToolCallStatus.SUCCEEDED for c in calls)
    roles = list(MissionMessage.objects.filter(mission=mission).values_list("role", flat=True))
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    kinds = list(JournalEntry.objects.filter(mission_id=mission.pk).order_by("seq").values_list("kind", flat=True))
    assert kinds[0] == "mission.created"
    assert "llm.completed" in kinds and "tool.executed" in kinds and kinds[-1] == "mission.completed"


def _turns(*turns: Any) -> list[ScriptTurn]:
    return list(turns)


def _call(name: str, arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name, arguments)


def test_unknown_tools_and_schema_invalid_arguments_go_back_to_the_model_unexecuted(
    in_acme: Any, script: Any, mailoutbox: Any
) -> None:
    marker = script(
        unique("[invalid]"),
        _turns(
            ScriptTurn(text="Trying.", tool_calls=[_call("send_email", {"to": "not-a-list", "subject": "x"})]),
            ScriptTurn(text="Stopping."),
        ),
    )
    crew = make_crew()
    mission = run_to_rest(in_acme, start(crew, f"{marker} go"))
    assert mission.status == MissionStatus.COMPLETED
    call = ToolCall.objects.get(mission=mission)
    assert call.status == ToolCallStatus.INVALID
    assert "to: 'not-a-list' is not of type 'array'" in call.error and "'body' is a required property" in call.error
    assert call.started_at is None and mailoutbox == []
    tool_message = MissionMessage.objects.get(mission=mission, role="tool")
    assert "do not match the tool's schema" in tool_message.content
    failed = JournalEntry.objects.get(mission_id=mission.pk, kind="tool.failed")
    assert failed.payload["outcome"] == "rejected"
    assert not JournalEntry.objects.filter(mission_id=mission.pk, kind="tool.executed").exists()


def test_a_tool_the_agent_was_not_given_is_refused(in_acme: Any) -> None:

    crew = make_crew(tools=["crm_lookup"])
    mission = start(crew, unique("not given"))
    agent = crew.agents.get()
    for name, expected in [("send_email", "is not one of yours"), ("rm_rf", "Unknown tool 'rm_rf'")]:
        outcome = handle(
            workspace=in_acme,
            mission=mission,
            agent=agent,
            call={"id": f"c-{name}", "name": name, "arguments": {}},
            step=1,
        )
        assert outcome.is_error and expected in outcome.content
        assert ToolCall.objects.get(mission=mission, tool_call_id=f"c-{name}").status == ToolCallStatus.INVALID


def test_step_limit_fails_the_mission(in_acme: Any, script: Any) -> None:
    marker = script(
        unique("[limit]"),
        _turns(*[ScriptTurn(text=f"{n}", tool_calls=[_call("crm_lookup", {"query": "Acme"})]) for n in range(10)]),
    )
    crew = make_crew(max_steps=3)
    mission = run_to_rest(in_acme, start(crew, f"{marker} loop"))
    assert mission.status == MissionStatus.FAILED
    assert mission.halt_reason == "max_steps" and mission.steps == 3
    assert JournalEntry.objects.get(mission_id=mission.pk, kind="mission.failed").payload["reason"] == "max_steps"


def test_wall_time_limit_fails_the_mission(in_acme: Any) -> None:
    crew = make_crew(max_wall_seconds=5)
    mission = start(crew, unique("slow"))
    Mission.objects.filter(pk=mission.pk).update(running_seconds=6.0)
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.FAILED and mission.halt_reason == "max_wall_time"
    assert mission.model_calls == 0


def test_a_blocking_budget_stops_the_mission_before_the_model_is_called(in_acme: Any) -> None:
    from apps.budgets.services import budget_create

    crew = make_crew()
    budget_create(name=unique("tiny"), scope="crew", scope_id=crew.pk, window="day", limit_microusd=1)
    mission = run_to_rest(in_acme, start(crew, unique("expensive")))
    assert mission.status == MissionStatus.FAILED and mission.halt_reason == "budget"
    assert "budget" in mission.error["message"]
    assert mission.cost_micros == 0 and mission.model_calls == 0


def test_cancel_takes_effect_at_the_next_step(in_acme: Any, script: Any) -> None:
    from apps.crews.services import mission_cancel

    marker = script(
        unique("[cancel]"),
        _turns(*[ScriptTurn(text=f"{n}", tool_calls=[_call("crm_lookup", {"query": "Acme"})]) for n in range(6)]),
    )
    mission = start(make_crew(), f"{marker} go")

    def progress(line: str) -> None:
        if line.startswith("step 2:"):
            mission_cancel(mission=mission)

    mission = run_to_rest(in_acme, mission, progress=progress)
    assert mission.status == MissionStatus.CANCELLED
    assert mission.steps == 2 and mission.control == ""
    kinds = list(JournalEntry.objects.filter(mission_id=mission.pk).order_by("seq").values_list("kind", flat=True))
    assert kinds.index("mission.control_requested") < kinds.index("mission.cancelled")


def test_pause_then_resume_continues_from_the_checkpoint(in_acme: Any, script: Any) -> None:
    from apps.crews.services import mission_pause, mission_resume

    marker = script(
        unique("[pause]"),
        _turns(
            ScriptTurn(text="1", tool_calls=[_call("write_note", {"filename": "one.txt", "content": "1"})]),
            ScriptTurn(text="2", tool_calls=[_call("write_note", {"filename": "two.txt", "content": "2"})]),
            ScriptTurn(text="Done."),
        ),
    )
    mission = start(make_crew(), f"{marker} go")

    def progress(line: str) -> None:
        if line.startswith("step 1:"):
            mission_pause(mission=mission)

    mission = run_to_rest(in_acme, mission, progress=progress)
    assert mission.status == MissionStatus.PAUSED and mission.steps == 1
    mission_resume(mission=mission)
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED and mission.steps == 5
    assert ToolCall.objects.filter(mission=mission).count() == 2
    assert mission.model_calls == 3


def test_handoff_passes_the_mission_to_the_next_agent(in_acme: Any, script: Any) -> None:
    marker = script(
        unique("[handoff]"),
        _turns(
            ScriptTurn(text="Over to you.", tool_calls=[_call("handoff", {"to": "Responder", "note": "VIP"})]),
            ScriptTurn(text="Answered."),
        ),
    )
    crew = make_crew(agents=2)
    mission = run_to_rest(in_acme, start(crew, f"{marker} go"))
    assert mission.status == MissionStatus.COMPLETED
    turns = list(MissionMessage.objects.filter(mission=mission, role="assistant").order_by("seq"))
    assert [t.agent.name for t in turns] == ["Triage", "Responder"]  # type: ignore[union-attr]
    assert [t.model for t in turns] == ["offline-small", "offline-medium"]
    entry = JournalEntry.objects.get(mission_id=mission.pk, kind="mission.handoff")
    assert entry.payload == {"from_agent": "Triage", "to_agent": "Responder", "note": "VIP", "step": 2}


def test_send_email_goes_through_the_email_backend_once(in_acme: Any, script: Any, mailoutbox: Any) -> None:
    marker = script(
        unique("[mail]"),
        _turns(
            ScriptTurn(tool_calls=[_call("send_email", {"to": ["sarah@acme.test"], "subject": "Hi", "body": "Hello"})]),
            ScriptTurn(text="Sent."),
        ),
    )
    mission = run_to_rest(in_acme, start(make_crew(), f"{marker} go"))
    assert mission.status == MissionStatus.COMPLETED
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["sarah@acme.test"] and message.subject == "Hi"
    call = ToolCall.objects.get(mission=mission)
    assert message.extra_headers["X-Quarterdeck-Tool-Call"] == call.tool_call_id
    assert call.result["message_id"] == message.extra_headers["Message-ID"]


def test_a_side_effecting_call_cut_off_mid_run_is_not_run_again(in_acme: Any, script: Any, mailoutbox: Any) -> None:
    """What a killed worker leaves behind: the call marked running, its step not checkpointed."""
    marker = script(
        unique("[cutoff]"),
        _turns(
            ScriptTurn(tool_calls=[_call("send_email", {"to": ["a@acme.test"], "subject": "S", "body": "B"})]),
            ScriptTurn(text="Checked."),
        ),
    )
    mission = start(make_crew(), f"{marker} go")

    def stop_after_the_model_turn(line: str) -> None:
        if line.startswith("step 1:"):
            Mission.objects.filter(pk=mission.pk).update(control="pause")

    mission = run_to_rest(in_acme, mission, progress=stop_after_the_model_turn)
    assert mission.status == MissionStatus.PAUSED
    pending = MissionMessage.objects.get(mission=mission, role="assistant").tool_calls[0]
    ToolCall.objects.create(
        mission=mission,
        tool_call_id=pending["id"],
        tool="send_email",
        arguments=pending["arguments"],
        side_effects=True,
        status=ToolCallStatus.RUNNING,
    )
    from apps.crews.services import mission_resume

    mission_resume(mission=mission)
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED
    assert mailoutbox == []
    call = ToolCall.objects.get(mission=mission)
    assert call.status == ToolCallStatus.FAILED and "not run again" in call.error
    assert JournalEntry.objects.get(mission_id=mission.pk, kind="tool.failed").payload["outcome"] == "interrupted"


def test_a_model_turn_that_ran_before_a_crash_is_not_charged_again(in_acme: Any) -> None:
    """The turn's request id is the same on every attempt; the gateway answers it from its record."""
    from apps.budgets.models import LedgerEntry
    from apps.crews.runtime.graph import initial_state
    from apps.crews.runtime.model import call_model
    from apps.crews.tools import get_tool

    crew = make_crew()
    mission = start(crew, unique("crash after the model call"))
    agent = crew.agents.get()
    state = initial_state(mission, agent)
    tools = [get_tool(name) for name in agent.tools]
    first = call_model(
        mission=mission,
        agent=agent,
        roster=[agent],
        messages=state["messages"],
        tools=[t for t in tools if t],
        request_id=f"{mission.pk}:turn:1",
    )
    assert not first.replayed
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED
    assert MissionMessage.objects.get(mission=mission, seq=1).cost_micros == first.cost_microusd
    charges = LedgerEntry.objects.filter(request_id=f"{mission.pk}:turn:1")
    assert charges.filter(kind="reservation").count() == 1


def test_fork_continues_from_the_chosen_step_through_its_checkpoint(in_acme: Any, script: Any) -> None:
    from apps.audit.replay import replay_mission
    from apps.crews.services import mission_fork

    marker = script(
        unique("[fork]"),
        _turns(
            ScriptTurn(text="Look.", tool_calls=[_call("crm_lookup", {"query": "Acme"})]),
            ScriptTurn(text="Note.", tool_calls=[_call("write_note", {"filename": "n.txt", "content": "x"})]),
            ScriptTurn(text="Done."),
        ),
    )
    original = run_to_rest(in_acme, start(make_crew(), f"{marker} go"))
    assert original.status == MissionStatus.COMPLETED and original.steps == 5
    step_two = JournalEntry.objects.get(mission_id=original.pk, kind="mission.step", payload__step=2)

    fork = mission_fork(mission=original, from_seq=step_two.seq)
    assert fork.forked_from_id == original.pk and fork.steps == 2 and fork.status == MissionStatus.QUEUED
    first = JournalEntry.objects.filter(mission_id=fork.pk).order_by("seq").first()
    assert first is not None and first.kind == "fork.created" and first.payload["from_seq"] == step_two.seq
    assert list(fork.messages.values_list("role", flat=True)) == ["user", "assistant", "tool"]

    fork = run_to_rest(in_acme, fork)
    assert fork.status == MissionStatus.COMPLETED and fork.steps == 5 and fork.result == "Done."
    assert list(ToolCall.objects.filter(mission=fork).values_list("tool", flat=True)) == ["write_note"]
    assert fork.model_calls == 3  # turns 2 and 3 ran in the fork, under its own request ids
    replay = replay_mission(mission_id=fork.pk)
    assert replay.forked_from == {"mission_id": str(original.pk), "seq": step_two.seq}
    assert replay.status == "completed"
    assert [c["tool_name"] for c in replay.tool_calls] == ["crm_lookup", "write_note"]

    by_step = mission_fork(mission=original, step=4)
    assert by_step.steps == 4
    by_step = run_to_rest(in_acme, by_step)
    assert by_step.status == MissionStatus.COMPLETED and not ToolCall.objects.filter(mission=by_step).exists()


def test_a_step_recorded_before_its_checkpoint_was_lost_is_repeated_without_effects(
    in_acme: Any, script: Any, mailoutbox: Any
) -> None:
    """The crash window between a step's commit and LangGraph's checkpoint: the step runs again
    from the previous checkpoint, and neither the email, nor the charge, nor the journal repeats."""
    from apps.budgets.models import LedgerEntry
    from apps.crews.runtime import checkpoints
    from apps.crews.services import mission_resume

    marker = script(
        unique("[lost checkpoint]"),
        _turns(
            ScriptTurn(tool_calls=[_call("send_email", {"to": ["a@acme.test"], "subject": "S", "body": "B"})]),
            ScriptTurn(text="Checked."),
        ),
    )
    mission = start(make_crew(), f"{marker} go")

    def pause_after_step_two(line: str) -> None:
        if line.startswith("step 2:"):
            Mission.objects.filter(pk=mission.pk).update(control="pause")

    mission = run_to_rest(in_acme, mission, progress=pause_after_step_two)
    assert mission.status == MissionStatus.PAUSED and mission.steps == 2 and len(mailoutbox) == 1
    history = checkpoints.history(mission=mission)
    after_step_one = next(c for c in history if c.step == 1)
    with checkpoints.saver(in_acme.schema_name) as saver:
        # Lose every checkpoint after step 1, as if the worker died right after step 2 committed.
        saver.conn.execute(
            "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id > %s",
            [mission.thread_id, after_step_one.checkpoint_id],
        )
    assert checkpoints.history(mission=mission)[-1].step == 1

    mission_resume(mission=mission)
    mission = run_to_rest(in_acme, mission)
    assert mission.status == MissionStatus.COMPLETED and mission.steps == 3
    assert len(mailoutbox) == 1
    steps = list(
        JournalEntry.objects.filter(mission_id=mission.pk, kind="mission.step").values_list("payload__step", flat=True)
    )
    assert sorted(steps) == [1, 2, 3]
    assert JournalEntry.objects.filter(mission_id=mission.pk, kind="tool.executed").count() == 1
    assert LedgerEntry.objects.filter(request_id__startswith=f"{mission.pk}:turn:", kind="reservation").count() == 2
