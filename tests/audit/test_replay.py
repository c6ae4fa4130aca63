"""Replay reconstructs a mission from the journal alone, and equals the live records.

The mission kinds belong to crews, llm and approvals; their registered schemas may carry
more keys than replay reads (see apps.audit.replay). ``fit`` turns the test's event values
into a payload valid for whatever definition is registered, so this test writes what the
runtime would write and compares with what the runtime's own tables would hold.
"""

from __future__ import annotations

import json
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from apps.audit import catalog
from apps.audit.models import JournalEntry, MissionFork
from apps.audit.replay import replay_mission
from apps.audit.services import journal_append, mission_fork
from apps.core.errors import NotFound, ValidationFailed
from apps.tenants.access import workspace_schema

pytestmark = pytest.mark.django_db

_DEFAULTS = {str: "", int: 0, float: 0.0, bool: False, list: [], dict: {}, type(None): None}


def fit(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    definition = catalog.get_kind(kind)
    payload = {k: v for k, v in values.items() if k in definition.required or k in definition.optional}
    for key, spec in definition.required.items():
        if key not in payload:
            first = spec[0] if isinstance(spec, tuple) else spec
            payload[key] = _DEFAULTS[first]
    return payload


def allows(kind: str, key: str) -> bool:
    definition = catalog.get_kind(kind)
    return key in definition.required or key in definition.optional


class Runtime:
    """What a mission run leaves behind: the journal (written here through journal_append)
    and the live records the runtime keeps in its own tables (kept here as plain data)."""

    def __init__(self, mission: uuid.UUID, crew: uuid.UUID, agent: uuid.UUID) -> None:
        self.mission, self.crew, self.agent = mission, crew, agent
        self.live: dict[str, Any] = {
            "status": None,
            "output": None,
            "tool_calls": {},
            "approvals": {},
            "cost_microusd": 0,
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "assistant_contents": [],
            "tool_messages": [],
        }
        self.seqs: dict[str, int] = {}

    def write(self, kind: str, values: dict[str, Any], label: str | None = None) -> JournalEntry:
        entry = journal_append(
            kind=kind, payload=fit(kind, values), mission_id=self.mission, crew_id=self.crew, agent_id=self.agent
        )
        if label:
            self.seqs[label] = entry.seq
        return entry

    def create(self, goal: str, data: dict[str, Any]) -> None:
        self.live.update(goal=goal, input=data, status="created")
        self.write("mission.created", {"goal": goal, "input": data, "crew_id": str(self.crew)})

    def model_turn(
        self, content: str, calls: list[dict[str, Any]], tokens: tuple[int, int], cost: int, label: str
    ) -> None:
        usage = {"input_tokens": tokens[0], "output_tokens": tokens[1]}
        self.write(
            "llm.completed",
            {
                "model": "claude-sonnet",
                "provider": "anthropic",
                "stop_reason": "tool_use" if calls else "end_turn",
                "content": content,
                "tool_calls": calls,
                "usage": usage,
                **usage,
                "cost_microusd": cost,
                "agent_id": str(self.agent),
                "request_id": f"req-{label}",
            },
            label,
        )
        if catalog.is_registered("mission.step") and allows("mission.step", "content"):
            # The runtime journals the turn's text with the finished step.
            step = {"step": len(self.live["assistant_contents"]) + 1, "node": "agent", "agent": "support"}
            self.write(
                "mission.step",
                {**step, "content": content, "request_id": f"req-{label}", "tool_calls": [c["name"] for c in calls]},
            )
        self.live["cost_microusd"] += cost
        for key, value in usage.items():
            self.live["usage"][key] += value
        self.live["assistant_contents"].append(content)
        for call in calls:
            self.live["tool_calls"][call["id"]] = {
                "tool_call_id": call["id"],
                "tool_name": call["name"],
                "arguments": call["arguments"],
                "status": "called",
                "result": None,
                "error": None,
            }
            self.write(
                "tool.called", {"tool_call_id": call["id"], "tool_name": call["name"], "arguments": call["arguments"]}
            )

    def approval(self, call_id: str, approval_id: str, decision: str, by: str) -> None:
        call = self.live["tool_calls"][call_id]
        common = {
            "approval_id": approval_id,
            "request_id": approval_id,
            "tool_call_id": call_id,
            "tool_name": call["tool_name"],
            "arguments": call["arguments"],
        }
        self.write("approval.requested", {**common, "policy_name": "refunds", "mode": "sync", "reason": "money"})
        self.write(
            "approval.decided",
            {**common, "decision": decision, "status": decision, "decided_by": by, "comment": "checked"},
        )
        self.live["approvals"][approval_id] = {
            "approval_id": approval_id,
            "tool_call_id": call_id,
            "decision": decision,
            "decided_by": by,
        }
        call["status"] = "approved" if decision == "approved" else "denied"

    def tool_result(self, call_id: str, result: Any = None, error: str | None = None) -> None:
        call = self.live["tool_calls"][call_id]
        base = {"tool_call_id": call_id, "tool_name": call["tool_name"], "arguments": call["arguments"]}
        if error is None:
            self.write("tool.executed", {**base, "result": result})
            call.update(status="executed", result=result)
            self.live["tool_messages"].append({"tool_call_id": call_id, "content": result})
        else:
            self.write("tool.failed", {**base, "error": error, "outcome": "error"})
            call.update(status="failed", error=error)
            self.live["tool_messages"].append({"tool_call_id": call_id, "error": error})

    def finish(self, output: Any) -> None:
        self.write("mission.completed", {"status": "completed", "output": output})
        self.live.update(status="completed", output=output)


def project(replayed: dict[str, Any], with_content: bool) -> dict[str, Any]:
    """The replay in the shape of the live records."""
    return {
        "goal": replayed["goal"],
        "input": replayed["input"],
        "status": replayed["status"],
        "output": replayed["output"],
        "tool_calls": {
            call["tool_call_id"]: {
                key: call[key] for key in ("tool_call_id", "tool_name", "arguments", "status", "result", "error")
            }
            for call in replayed["tool_calls"]
        },
        "approvals": {
            a["approval_id"]: {key: a[key] for key in ("approval_id", "tool_call_id", "decision", "decided_by")}
            for a in replayed["approvals"]
        },
        "cost_microusd": replayed["cost_microusd"],
        "usage": {key: replayed["usage"].get(key, 0) for key in ("input_tokens", "output_tokens")},
        "assistant_contents": [m["content"] for m in replayed["messages"] if m["role"] == "assistant"]
        if with_content
        else None,
        "tool_messages": [
            {key: m[key] for key in ("tool_call_id", "content", "error") if key in m}
            for m in replayed["messages"]
            if m["role"] == "tool"
        ],
    }


def run_support_mission(other_mission: uuid.UUID | None = None) -> Runtime:
    rt = Runtime(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    rt.create("Handle ticket 42", {"ticket": 42, "text": "My order A-1 never arrived, refund please"})
    rt.write("mission.started", {"attempt": 1})
    rt.model_turn(
        "Let me look the order up.",
        [{"id": "tc1", "name": "lookup_order", "arguments": {"order": "A-1"}}],
        (100, 20),
        1500,
        "turn1",
    )
    if other_mission:  # another mission interleaves; replay must not pick it up
        journal_append(
            kind="tool.called",
            payload=fit("tool.called", {"tool_call_id": "x", "tool_name": "noise", "arguments": {}}),
            mission_id=other_mission,
        )
    rt.tool_result("tc1", result={"status": "lost in transit"})
    rt.model_turn(
        "I will refund the order.",
        [{"id": "tc2", "name": "refund", "arguments": {"order": "A-1", "amount_microusd": 25_000_000}}],
        (150, 30),
        2000,
        "turn2",
    )
    rt.approval("tc2", "ap-1", "approved", "acme-reviewer")
    rt.tool_result("tc2", result={"refund_id": "r-9"})
    rt.model_turn(
        "Letting the customer know.",
        [{"id": "tc3", "name": "send_email", "arguments": {"to": "c@example.test"}}],
        (80, 10),
        800,
        "turn3",
    )
    rt.tool_result("tc3", error="smtp unavailable")
    rt.finish({"answer": "Refunded order A-1", "refund_id": "r-9"})
    return rt


def test_replay_reconstructs_the_mission_equal_to_the_live_records(in_acme: Any) -> None:
    rt = run_support_mission(other_mission=uuid.uuid4())
    replayed = replay_mission(mission_id=rt.mission).as_dict()
    with_content = allows("llm.completed", "content") or (
        catalog.is_registered("mission.step") and allows("mission.step", "content")
    )
    expected = dict(rt.live)
    if not with_content:
        expected["assistant_contents"] = None
    assert project(replayed, with_content) == expected
    assert replayed["crew_id"] == str(rt.crew)
    assert replayed["llm_calls"] == 3
    assert replayed["messages"][0] == {"role": "user", "content": rt.live["input"]}
    assert [m["role"] for m in replayed["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]


def test_replay_up_to_a_sequence_number_stops_there(in_acme: Any) -> None:
    rt = run_support_mission()
    state = replay_mission(mission_id=rt.mission, up_to_seq=rt.seqs["turn2"]).as_dict()
    assert state["status"] == "running"
    assert state["cost_microusd"] == 3500
    # The model asked for tc2 in turn 2; the call itself is journaled after it.
    assert [c["status"] for c in state["tool_calls"]] == ["executed"]


def test_replay_of_an_unknown_mission_is_not_found(in_acme: Any) -> None:
    with pytest.raises(NotFound):
        replay_mission(mission_id=uuid.uuid4())


def test_fork_records_the_source_and_replays_from_the_fork_point(in_acme: Any) -> None:
    rt = run_support_mission()
    fork = mission_fork(source_mission_id=rt.mission, from_seq=rt.seqs["turn2"], reason="try a voucher instead")
    stored = MissionFork.objects.get(pk=fork.id)
    assert (stored.source_mission_id, stored.from_seq) == (rt.mission, rt.seqs["turn2"])
    entry = JournalEntry.objects.get(seq=fork.entry_seq)
    assert entry.kind == "fork.created" and entry.mission_id == fork.new_mission_id
    assert entry.payload["source_mission_id"] == str(rt.mission)
    assert entry.payload["from_seq"] == rt.seqs["turn2"]
    assert entry.payload["state"]["cost_microusd"] == 3500

    forked = replay_mission(mission_id=fork.new_mission_id).as_dict()
    assert forked["forked_from"] == {"mission_id": str(rt.mission), "seq": rt.seqs["turn2"]}
    assert forked["status"] == "running" and forked["goal"] == "Handle ticket 42"
    assert forked["cost_microusd"] == 3500
    assert [c["tool_call_id"] for c in forked["tool_calls"]] == ["tc1"]

    # The fork goes its own way; the source is untouched.
    branch = Runtime(fork.new_mission_id, rt.crew, rt.agent)
    branch.live["tool_calls"] = {}
    branch.write(
        "tool.executed",
        {"tool_call_id": "tc2", "tool_name": "refund", "arguments": {"voucher": True}, "result": {"voucher": "V-1"}},
    )
    branch.write("mission.completed", {"status": "completed", "output": {"answer": "voucher"}})
    forked = replay_mission(mission_id=fork.new_mission_id).as_dict()
    assert forked["status"] == "completed" and forked["output"] == {"answer": "voucher"}
    assert forked["tool_calls"][1]["result"] == {"voucher": "V-1"}
    assert replay_mission(mission_id=rt.mission).as_dict()["output"] == rt.live["output"]


def test_fork_points_must_belong_to_the_mission(in_acme: Any) -> None:
    rt = run_support_mission()
    other = journal_append(kind="mission.started", payload=fit("mission.started", {}), mission_id=uuid.uuid4())
    with pytest.raises(ValidationFailed):
        mission_fork(source_mission_id=rt.mission, from_seq=other.seq)
    with pytest.raises(NotFound):
        mission_fork(source_mission_id=uuid.uuid4(), from_seq=1)


def test_replay_and_fork_endpoints(api_as: Any, acme: Any) -> None:
    with workspace_schema(acme):
        rt = run_support_mission()
        expected = replay_mission(mission_id=rt.mission).as_dict()
    viewer, operator = api_as("viewer"), api_as("operator")
    response = viewer.get(f"/api/v1/journal/missions/{rt.mission}/replay/")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(expected))
    partial = viewer.get(f"/api/v1/journal/missions/{rt.mission}/replay/?up_to={rt.seqs['turn1']}").json()
    assert partial["llm_calls"] == 1

    assert (
        viewer.post(
            f"/api/v1/journal/missions/{rt.mission}/forks/", {"from_seq": rt.seqs["turn1"]}, format="json"
        ).status_code
        == 403
    )
    response = operator.post(
        f"/api/v1/journal/missions/{rt.mission}/forks/",
        {"from_seq": rt.seqs["turn1"], "reason": "retry"},
        format="json",
    )
    assert response.status_code == 201, response.content
    fork = response.json()
    assert fork["source_mission_id"] == str(rt.mission) and fork["from_seq"] == rt.seqs["turn1"]
    listed = viewer.get(f"/api/v1/journal/missions/{rt.mission}/forks/").json()
    assert [f["id"] for f in listed] == [fork["id"]]
    replayed = viewer.get(f"/api/v1/journal/missions/{fork['new_mission_id']}/replay/").json()
    assert replayed["forked_from"]["mission_id"] == str(rt.mission)
    bad = operator.post(f"/api/v1/journal/missions/{uuid.uuid4()}/forks/", {"from_seq": 1}, format="json")
    assert bad.status_code == 404


def test_journal_replay_command_prints_the_reconstruction(in_acme: Any) -> None:
    rt = run_support_mission()
    out = StringIO()
    call_command("journal_replay", str(rt.mission), "--workspace", "acme", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed == json.loads(json.dumps(replay_mission(mission_id=rt.mission).as_dict()))
    assert printed["status"] == "completed" and printed["cost_microusd"] == 4300
