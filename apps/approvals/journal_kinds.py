"""Journal entry kinds written by the approvals app (registered from ``ApprovalsConfig.ready``)."""

from __future__ import annotations

from apps.audit.catalog import EntryKind, Severity, TypeSpec, register

NULLABLE_STR = (str, type(None))
NULLABLE_INT = (int, type(None))

_REQUEST: dict[str, TypeSpec] = {
    "request_id": str,
    "tool_name": str,
    "tool_call_id": str,
}
_POLICY_REF: dict[str, TypeSpec] = {"policy_id": NULLABLE_STR, "policy_name": str}

KINDS = [
    EntryKind(
        "approval.requested",
        Severity.NOTICE,
        required={
            **_REQUEST,
            **_POLICY_REF,
            "arguments": dict,
            "mode": str,
            "reason": str,
            "approver_roles": list,
            "approver_user_ids": list,
            "required_approvals": int,
            "segregation_of_duties": bool,
            "deadline": NULLABLE_STR,
            "timeout_action": str,
        },
        optional={
            "diff": (dict, type(None)),
            "reasoning": str,
            "estimated_cost_microusd": int,
            "started_by_user_id": NULLABLE_INT,
            "autonomy_level": str,
        },
        description="A tool call now waits for people (sync) or is queued for review (async).",
    ),
    EntryKind(
        "approval.denied_by_policy",
        Severity.WARNING,
        required={"tool_name": str, "tool_call_id": str, "arguments": dict, "reason": str, **_POLICY_REF},
        description="The gate refused a tool call outright.",
    ),
    EntryKind(
        "approval.vote_recorded",
        Severity.INFO,
        required={
            **_REQUEST,
            **_POLICY_REF,
            "decision": str,
            "comment": str,
            "arguments": dict,
            "edited": bool,
            "approvals": int,
            "required_approvals": int,
        },
        description="One approval of several needed; the request is still pending.",
    ),
    EntryKind(
        "approval.decided",
        Severity.NOTICE,
        required={
            **_REQUEST,
            **_POLICY_REF,
            "decision": str,
            "status": str,
            "comment": str,
            "arguments": dict,
            "original_arguments": dict,
            "edited": bool,
            "decided_by": str,
            "decided_at": str,
        },
        optional={"decided_by_user_id": NULLABLE_INT, "approvals": int, "required_approvals": int},
        description="A reviewer approved (possibly with edited arguments) or denied a request.",
    ),
    EntryKind(
        "approval.commented",
        Severity.INFO,
        required={**_REQUEST, "comment": str},
    ),
    EntryKind(
        "approval.timed_out",
        Severity.WARNING,
        required={**_REQUEST, **_POLICY_REF, "action": str, "status": str, "deadline": str, "arguments": dict},
        description="Nobody decided in time; the timeout action was applied.",
    ),
    EntryKind(
        "approval.escalated",
        Severity.WARNING,
        required={**_REQUEST, **_POLICY_REF, "to_roles": list, "approver_roles": list, "deadline": str},
        description="Nobody decided in time; the request went to another role with a new timeout.",
    ),
    EntryKind(
        "approval.cancelled",
        Severity.INFO,
        required={**_REQUEST, "reason": str},
    ),
    EntryKind(
        "approval.executed",
        Severity.INFO,
        required={**_REQUEST, "ok": bool},
        optional={"detail": str},
        description="The runtime ran an approved (async) call.",
    ),
    EntryKind(
        "policy.created",
        Severity.NOTICE,
        required={"policy_id": str, "name": str, "version": int, "policy": dict},
    ),
    EntryKind(
        "policy.updated",
        Severity.NOTICE,
        required={"policy_id": str, "name": str, "version": int, "changes": dict},
    ),
    EntryKind(
        "policy.deleted",
        Severity.NOTICE,
        required={"policy_id": str, "name": str, "version": int, "policy": dict},
    ),
]


def register_kinds() -> None:
    register(*KINDS)
