"""Reconstructing a mission from the journal alone.

The contract with the apps that write mission entries (crews, llm, approvals): replay reads
these payload keys. Entries carry ``mission_id`` (and ``crew_id``/``agent_id`` where they
apply) in their columns. Where an owning app already registered a kind with other key names,
replay reads those too (noted as "or").

=====================  =========================================================================
kind                   payload keys replay reads
=====================  =========================================================================
mission.created        goal: str, input: dict, crew_id: str
mission.started        (none)                        -> status "running"
mission.paused/resumed (none)                        -> status "paused"/"running"
mission.message        role: str, content: str; optional tool_call_id
mission.step           node: "agent" with content: str (the model turn's text, attached to
                       the assistant message of the same request_id, else the last one
                       without text); other steps are not read
llm.completed          model: str, cost_microusd: int; usage: dict or the flat keys
                       input_tokens/output_tokens/cache_read_tokens/cache_write_tokens;
                       optional content: str, tool_calls: list, agent_id (else the column),
                       request_id (else the column)
llm.blocked            optional reason: str
tool.called            tool_call_id: str, tool_name: str, arguments: dict
tool.queued            tool_call_id, tool_name, arguments, approval_request_id
tool.executed          tool_call_id: str, tool_name: str, arguments: dict, result: any JSON
tool.failed            tool_call_id: str, tool_name: str, arguments: dict, error: str;
                       optional outcome: str
mission.waiting        tool_call_id, approval_request_id
approval.requested     approval_id or request_id (the approval request): str, tool_call_id,
                       tool_name; optional arguments: dict
approval.decided       approval_id or request_id, tool_call_id, decision: "approved"|"denied",
                       decided_by: str; optional status: str, comment or reason: str
approval.timed_out     approval_id or request_id, tool_call_id; optional status, action
approval.escalated     approval_id or request_id, tool_call_id; optional to_roles or to
approval.cancelled     approval_id or request_id, tool_call_id
approval.denied_by_policy  tool_call_id, tool_name, arguments, reason
mission.completed      status: "completed", output: any JSON
mission.failed         status: "failed", output: any JSON; optional error or reason: str
mission.cancelled      status: "cancelled", output: any JSON; optional reason: str
fork.created           (this app) fork_id, source_mission_id, from_seq, new_mission_id
=====================  =========================================================================

The reconstructed conversation (``messages``) is: the mission input as the first ``user``
message, one ``assistant`` message per ``llm.completed`` (content when journaled, and tool
calls), one ``tool`` message per ``tool.executed``/``tool.failed``, and every
``mission.message``. ``MISSION_CONTRACT_KINDS`` are catalog definitions matching this
contract, for kinds no owning app has registered (the tests register them that way).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from apps.core.errors import NotFound

from .catalog import EntryKind, Severity
from .models import JournalEntry

NONE = type(None)
ANY_JSON = (str, int, float, bool, list, dict, NONE)

MISSION_CONTRACT_KINDS = (
    EntryKind(
        "mission.created",
        Severity.NOTICE,
        required={"goal": str, "input": dict, "crew_id": str},
        optional={"title": str},
    ),
    EntryKind("mission.started", Severity.INFO, optional={"attempt": int}),
    EntryKind(
        "llm.completed",
        Severity.INFO,
        required={"model": str, "cost_microusd": int},
        optional={
            "agent_id": str,
            "request_id": str,
            "content": str,
            "tool_calls": list,
            "usage": dict,
            "input_tokens": int,
            "output_tokens": int,
        },
    ),
    EntryKind("mission.message", Severity.INFO, required={"role": str, "content": str}, optional={"tool_call_id": str}),
    EntryKind("llm.blocked", Severity.WARNING, optional={"agent_id": str, "model": str, "reason": str}),
    EntryKind(
        "tool.called",
        Severity.INFO,
        required={"tool_call_id": str, "tool_name": str, "arguments": dict},
    ),
    EntryKind(
        "tool.executed",
        Severity.INFO,
        required={"tool_call_id": str, "tool_name": str, "arguments": dict, "result": ANY_JSON},
    ),
    EntryKind(
        "tool.failed",
        Severity.WARNING,
        required={"tool_call_id": str, "tool_name": str, "arguments": dict, "error": str},
    ),
    EntryKind(
        "approval.requested",
        Severity.NOTICE,
        required={"approval_id": str, "tool_call_id": str, "tool_name": str},
        optional={"arguments": dict},
    ),
    EntryKind(
        "approval.decided",
        Severity.NOTICE,
        required={"approval_id": str, "tool_call_id": str, "decision": str, "decided_by": str},
        optional={"status": str, "comment": str, "reason": str},
    ),
    EntryKind(
        "approval.timed_out",
        Severity.WARNING,
        required={"approval_id": str, "tool_call_id": str},
        optional={"decision": str},
    ),
    EntryKind(
        "approval.escalated",
        Severity.NOTICE,
        required={"approval_id": str, "tool_call_id": str},
        optional={"to": str},
    ),
    EntryKind("mission.completed", Severity.NOTICE, required={"status": str, "output": ANY_JSON}),
    EntryKind(
        "mission.failed", Severity.WARNING, required={"status": str, "output": ANY_JSON}, optional={"error": str}
    ),
    EntryKind(
        "mission.cancelled", Severity.NOTICE, required={"status": str, "output": ANY_JSON}, optional={"reason": str}
    ),
)

_TERMINAL = {"mission.completed", "mission.failed", "mission.cancelled"}


@dataclass
class MissionReplay:
    mission_id: str
    crew_id: str | None = None
    goal: str | None = None
    input: dict[str, Any] | None = None
    status: str = "unknown"
    output: Any = None
    error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    cost_microusd: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    llm_calls: int = 0
    forked_from: dict[str, Any] | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    entries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mission_id": self.mission_id,
            "crew_id": self.crew_id,
            "goal": self.goal,
            "input": self.input,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "messages": self.messages,
            "tool_calls": self.tool_calls,
            "approvals": self.approvals,
            "cost_microusd": self.cost_microusd,
            "usage": self.usage,
            "llm_calls": self.llm_calls,
            "forked_from": self.forked_from,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "entries": self.entries,
        }

    def summary(self) -> dict[str, Any]:
        """A small description of the state (recorded in ``fork.created``)."""
        return {
            "status": self.status,
            "messages": len(self.messages),
            "tool_calls": len(self.tool_calls),
            "approvals": len(self.approvals),
            "cost_microusd": self.cost_microusd,
            "last_seq": self.last_seq,
        }

    # --- applying entries -----------------------------------------------------------------
    def apply(self, entry: JournalEntry) -> None:
        self.entries += 1
        self.first_seq = entry.seq if self.first_seq is None else self.first_seq
        self.last_seq = entry.seq
        if entry.crew_id and not self.crew_id:
            self.crew_id = str(entry.crew_id)
        handler = _HANDLERS.get(entry.kind)
        if handler is not None:
            handler(self, entry, entry.payload or {})

    def _tool_call(self, tool_call_id: str) -> dict[str, Any]:
        for call in self.tool_calls:
            if call["tool_call_id"] == tool_call_id:
                return call
        call = {
            "tool_call_id": tool_call_id,
            "tool_name": None,
            "arguments": None,
            "status": "called",
            "result": None,
            "error": None,
            "approval_id": None,
        }
        self.tool_calls.append(call)
        return call

    def _approval(self, approval_id: str, tool_call_id: str | None) -> dict[str, Any]:
        for approval in self.approvals:
            if approval["approval_id"] == approval_id:
                return approval
        approval = {
            "approval_id": approval_id,
            "tool_call_id": tool_call_id,
            "tool_name": None,
            "status": "pending",
            "decision": None,
            "decided_by": None,
            "comment": None,
        }
        self.approvals.append(approval)
        return approval


def _approval_id(payload: dict[str, Any]) -> str:
    return str(payload.get("approval_id") or payload.get("request_id") or payload.get("approval_request_id") or "")


def _created(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    state.goal = payload.get("goal")
    state.input = payload.get("input")
    state.crew_id = payload.get("crew_id") or state.crew_id
    state.status = "created"
    state.messages.append({"role": "user", "content": payload.get("input")})


def _status(status: str) -> Any:
    def handler(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
        state.status = status

    return handler


def _message(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    message: dict[str, Any] = {"role": payload.get("role"), "content": payload.get("content")}
    if payload.get("tool_call_id"):
        message["tool_call_id"] = payload["tool_call_id"]
    state.messages.append(message)


_FLAT_USAGE = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _llm_completed(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    state.llm_calls += 1
    state.cost_microusd += int(payload.get("cost_microusd") or 0)
    usage = dict(payload.get("usage") or {})
    for key in _FLAT_USAGE:
        if key in payload:
            usage[key] = payload[key]
    for key, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            state.usage[key] = state.usage.get(key, 0) + value
    state.messages.append(
        {
            "role": "assistant",
            "agent_id": payload.get("agent_id") or (str(entry.agent_id) if entry.agent_id else None),
            "model": payload.get("model"),
            "request_id": payload.get("request_id") or entry.request_id,
            "content": payload.get("content"),
            "tool_calls": payload.get("tool_calls") or [],
        }
    )


def _step(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    """A finished agent step carries the model turn's text (the gateway's llm.completed does
    not): attach it to that turn's assistant message."""
    if payload.get("node") != "agent" or payload.get("content") is None:
        return
    request_id = payload.get("request_id")
    turns = [message for message in reversed(state.messages) if message["role"] == "assistant"]
    target = next((m for m in turns if request_id and m.get("request_id") == request_id), None)
    if target is None:
        target = next((m for m in turns if m.get("content") is None), None)
    if target is not None:
        target["content"] = payload["content"]
        return
    state.messages.append(
        {
            "role": "assistant",
            "agent_id": str(entry.agent_id) if entry.agent_id else None,
            "model": None,
            "request_id": request_id,
            "content": payload["content"],
            "tool_calls": payload.get("tool_calls") or [],
        }
    )


def _llm_blocked(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    state.messages.append({"role": "system", "blocked": True, "reason": payload.get("reason")})


def _tool_called(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    call = state._tool_call(payload["tool_call_id"])
    call["tool_name"] = payload.get("tool_name")
    call["arguments"] = payload.get("arguments")


def _tool_queued(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    call = state._tool_call(payload["tool_call_id"])
    call.update(tool_name=payload.get("tool_name") or call["tool_name"], status="queued")
    call["approval_id"] = payload.get("approval_request_id") or call["approval_id"]


def _waiting(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    state.status = "waiting"
    call = state._tool_call(payload["tool_call_id"])
    call["status"] = "awaiting_approval"
    call["approval_id"] = payload.get("approval_request_id") or call["approval_id"]


def _tool_executed(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    call = state._tool_call(payload["tool_call_id"])
    call.update(tool_name=payload.get("tool_name"), arguments=payload.get("arguments"), status="executed")
    call["result"] = payload.get("result")
    state.messages.append(
        {"role": "tool", "tool_call_id": payload["tool_call_id"], "name": call["tool_name"], "content": call["result"]}
    )


def _tool_failed(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    call = state._tool_call(payload["tool_call_id"])
    call.update(tool_name=payload.get("tool_name"), arguments=payload.get("arguments"), status="failed")
    call["error"] = payload.get("error")
    if payload.get("outcome"):
        call["outcome"] = payload["outcome"]
    state.messages.append(
        {"role": "tool", "tool_call_id": payload["tool_call_id"], "name": call["tool_name"], "error": call["error"]}
    )


def _approval_requested(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    approval = state._approval(_approval_id(payload), payload.get("tool_call_id"))
    approval["tool_name"] = payload.get("tool_name")
    approval["status"] = "pending"
    if payload.get("tool_call_id"):
        call = state._tool_call(payload["tool_call_id"])
        call["approval_id"] = approval["approval_id"]
        call["status"] = "awaiting_approval"
        call["tool_name"] = call["tool_name"] or payload.get("tool_name")
        if payload.get("arguments") is not None and call["arguments"] is None:
            call["arguments"] = payload.get("arguments")


def _approval_decided(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    approval = state._approval(_approval_id(payload), payload.get("tool_call_id"))
    approval["decision"] = payload.get("decision")
    approval["status"] = payload.get("status") or payload.get("decision")
    approval["decided_by"] = payload.get("decided_by")
    approval["comment"] = payload.get("comment") or payload.get("reason") or None
    if payload.get("tool_call_id"):
        call = state._tool_call(payload["tool_call_id"])
        if call["status"] in {"called", "awaiting_approval", "queued"}:
            call["status"] = "approved" if payload.get("decision") == "approved" else "denied"


def _approval_timed_out(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    approval = state._approval(_approval_id(payload), payload.get("tool_call_id"))
    approval["status"] = payload.get("status") or "timed_out"
    approval["decision"] = payload.get("action") or payload.get("decision")


def _approval_escalated(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    approval = state._approval(_approval_id(payload), payload.get("tool_call_id"))
    approval["escalated_to"] = payload.get("to_roles") or payload.get("to")


def _approval_cancelled(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    state._approval(_approval_id(payload), payload.get("tool_call_id"))["status"] = "cancelled"


def _denied_by_policy(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    call = state._tool_call(payload["tool_call_id"])
    call.update(tool_name=payload.get("tool_name"), arguments=payload.get("arguments"), status="denied_by_policy")
    call["error"] = payload.get("reason")


def _finished(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    state.status = payload.get("status") or entry.kind.split(".", 1)[1]
    state.output = payload.get("output")
    state.error = payload.get("error") or payload.get("reason")


def _fork(state: MissionReplay, entry: JournalEntry, payload: dict[str, Any]) -> None:
    if state.forked_from is None:
        state.forked_from = {"mission_id": payload.get("source_mission_id"), "seq": payload.get("from_seq")}


_HANDLERS: dict[str, Any] = {
    "mission.created": _created,
    "mission.started": _status("running"),
    "mission.paused": _status("paused"),
    "mission.resumed": _status("running"),
    "mission.message": _message,
    "mission.step": _step,
    "mission.waiting": _waiting,
    "llm.completed": _llm_completed,
    "llm.blocked": _llm_blocked,
    "tool.called": _tool_called,
    "tool.queued": _tool_queued,
    "tool.executed": _tool_executed,
    "tool.failed": _tool_failed,
    "approval.requested": _approval_requested,
    "approval.decided": _approval_decided,
    "approval.timed_out": _approval_timed_out,
    "approval.escalated": _approval_escalated,
    "approval.cancelled": _approval_cancelled,
    "approval.denied_by_policy": _denied_by_policy,
    "mission.completed": _finished,
    "mission.failed": _finished,
    "mission.cancelled": _finished,
    "fork.created": _fork,
    "mission.forked": _fork,
}


def replay_mission(*, mission_id: uuid.UUID | str, up_to_seq: int | None = None, _depth: int = 0) -> MissionReplay:
    """The mission's state rebuilt from its journal entries (up to ``up_to_seq``).

    A forked mission starts from its source's state at the fork point, then applies its own
    entries. Raises NotFound when the journal has no entry for the mission.
    """
    mission = uuid.UUID(str(mission_id))
    entries = JournalEntry.objects.filter(mission_id=mission).order_by("seq")
    if up_to_seq is not None:
        entries = entries.filter(seq__lte=up_to_seq)
    iterator = entries.iterator(chunk_size=2000)
    first = next(iterator, None)
    if first is None:
        raise NotFound("No journal entries for this mission.", details={"mission_id": str(mission)})
    state = MissionReplay(mission_id=str(mission))
    if first.kind == "fork.created" and _depth < 50:
        source = replay_mission(
            mission_id=first.payload["source_mission_id"], up_to_seq=first.payload["from_seq"], _depth=_depth + 1
        )
        state = _rebase(source, mission)
    state.apply(first)
    for entry in iterator:
        state.apply(entry)
    return state


def _rebase(source: MissionReplay, mission: uuid.UUID) -> MissionReplay:
    state = MissionReplay(**{**source.__dict__})
    state.mission_id = str(mission)
    state.first_seq = None
    state.entries = 0
    if source.last_seq is not None and any(kind.endswith(state.status) for kind in _TERMINAL):
        # Forked from a finished mission's last step: the fork runs on from there.
        state.status, state.output, state.error = "running", None, None
    return state
