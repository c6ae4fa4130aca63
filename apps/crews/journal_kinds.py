"""Journal entry kinds written by the crews app (registered from CrewsConfig.ready).

The mission and tool kinds carry the payload keys ``apps.audit.replay`` reads (goal, input,
crew_id; tool_call_id, tool_name, arguments, result/error; status, output), plus our own
optional keys. Model turns are journaled by the gateway (``llm.completed``); each finished
step adds ``mission.step``, whose ``step`` number maps a journal position to the LangGraph
checkpoint a fork continues from.
"""

from __future__ import annotations

from apps.audit.catalog import EntryKind, Severity, register

NONE = type(None)
ANY_JSON = (str, int, float, bool, list, dict, NONE)
_TOOL = {"tool_call_id": str, "tool_name": str, "arguments": dict}

CREW_KINDS = (
    EntryKind("crew.created", Severity.NOTICE, required={"name": str, "autonomy": str, "default_model": str}),
    EntryKind("crew.updated", Severity.NOTICE, required={"name": str, "changes": dict}),
    EntryKind("agent.created", Severity.NOTICE, required={"name": str, "role": str, "model": str, "tools": list}),
    EntryKind("agent.updated", Severity.NOTICE, required={"name": str, "changes": dict}),
    EntryKind(
        "crm.change_applied",
        Severity.NOTICE,
        required={"change_id": int, "account": str, "diff": list},
        optional={"tool_call_id": str},
    ),
)

MISSION_KINDS = (
    EntryKind(
        "mission.created",
        Severity.NOTICE,
        required={"goal": str, "input": dict, "crew_id": str},
        optional={"title": str, "crew": str, "max_steps": int, "max_wall_seconds": int},
    ),
    EntryKind(
        "mission.forked",
        Severity.NOTICE,
        required={"goal": str, "crew_id": str, "source_mission_id": str, "from_step": int, "checkpoint_id": str},
        optional={"from_seq": int},
        description="The fork's own record (after the journal's fork.created): where its state came from.",
    ),
    EntryKind(
        "mission.started",
        Severity.INFO,
        optional={"attempt": int, "worker": str, "resumed": bool, "from_step": int},
        description="A worker claimed the mission and runs it (resumed: from a checkpoint).",
    ),
    EntryKind(
        "mission.step",
        Severity.INFO,
        required={"step": int, "node": str, "agent": str},
        optional={
            "request_id": str,
            "tool_calls": list,
            "content": str,
            "tool_call_id": str,
            "tool_name": str,
            "status": str,
            "duration_ms": int,
        },
        description="A step finished: a model turn (node agent) or one tool call (node tools).",
    ),
    EntryKind(
        "mission.message",
        Severity.INFO,
        required={"seq": int, "role": str, "content": str, "step": int},
        optional={"tool_call_id": str},
        description="A message added to the conversation by the runtime (the outcome of a queued call).",
    ),
    EntryKind(
        "mission.handoff",
        Severity.INFO,
        required={"from_agent": str, "to_agent": str, "note": str, "step": int},
    ),
    EntryKind(
        "mission.waiting",
        Severity.NOTICE,
        required={"tool_call_id": str, "tool_name": str, "approval_request_id": str, "step": int},
        optional={"reason": str},
        description="The mission waits for a sync approval of a tool call, or of a credential it needs (reason).",
    ),
    EntryKind("mission.control_requested", Severity.NOTICE, required={"control": str}),
    EntryKind("mission.paused", Severity.NOTICE, required={"step": int}),
    EntryKind("mission.resumed", Severity.NOTICE, required={"reason": str}, optional={"decision": dict}),
    EntryKind("mission.released", Severity.INFO, required={"worker": str, "reason": str}),
    EntryKind("mission.retried", Severity.NOTICE, required={"previous_status": str}),
    EntryKind(
        "mission.completed",
        Severity.NOTICE,
        required={"status": str, "output": ANY_JSON},
        optional={"cost_microusd": int, "model_calls": int, "tool_calls": int, "step": int},
    ),
    EntryKind(
        "mission.failed",
        Severity.WARNING,
        required={"status": str, "output": ANY_JSON},
        optional={"error": str, "reason": str, "step": int, "cost_microusd": int},
    ),
    EntryKind(
        "mission.cancelled",
        Severity.NOTICE,
        required={"status": str, "output": ANY_JSON},
        optional={"reason": str, "step": int},
    ),
)

TOOL_KINDS = (
    EntryKind(
        "tool.called",
        Severity.INFO,
        required=_TOOL,
        optional={"side_effects": bool, "step": int},
        description="The model asked for a tool call (not yet validated or governed).",
    ),
    EntryKind(
        "tool.queued",
        Severity.NOTICE,
        required={**_TOOL, "approval_request_id": str},
        optional={"step": int},
        description="Queued for async review; the agent goes on.",
    ),
    EntryKind(
        "tool.executed",
        Severity.INFO,
        required={**_TOOL, "result": ANY_JSON},
        optional={"step": int, "duration_ms": int, "edited": bool, "late": bool},
        description="The tool ran and returned ``result`` (scrubbed of secrets).",
    ),
    EntryKind(
        "tool.failed",
        Severity.WARNING,
        required={**_TOOL, "error": str},
        optional={"outcome": str, "step": int, "duration_ms": int, "late": bool},
        description=(
            "The call produced no result. outcome: rejected (unknown tool or invalid arguments, never "
            "run), denied (governance refused it, never run), error (it ran and failed), interrupted "
            "(cut off while running; not run again)."
        ),
    ),
)


def register_kinds() -> None:
    register(*CREW_KINDS, *MISSION_KINDS, *TOOL_KINDS)
