"""Journal entry kinds written by the LLM gateway and its settings."""

from __future__ import annotations

from apps.audit.catalog import EntryKind, Severity, register

NONE = type(None)

KINDS = (
    EntryKind(
        "routing.decided",
        Severity.INFO,
        required={"model": str, "source": str, "reason": str},
        optional={
            "provider": str,
            "tier": str,
            "skipped": list,
            "downgraded_from": str,
            "rule_id": int,
            "budget_id": int,
            "fallback_from": str,
            "fallback_error": str,
            "purpose": str,
        },
        description="Which model a call goes to and why (preference chain, tier downgrade, fallback).",
    ),
    EntryKind(
        "routing.failed",
        Severity.WARNING,
        required={"reason": str},
        optional={"skipped": list, "purpose": str},
        description="No model could be chosen for a call (none configured, or none usable); nothing was sent.",
    ),
    EntryKind(
        "llm.completed",
        Severity.INFO,
        required={
            "model": str,
            "provider": str,
            "stop_reason": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "cost_microusd": int,
        },
        optional={"latency_ms": int, "tool_calls": list, "attempts": int, "price_id": (int, NONE)},
        description="A model call returned; its actual usage was settled.",
    ),
    EntryKind(
        "llm.failed",
        Severity.WARNING,
        required={"models": list, "errors": list},
        optional={"released_microusd": int},
        description="Every model tried for a call failed; its reservation was released.",
    ),
    EntryKind(
        "llm.settings_changed",
        Severity.NOTICE,
        required={"changes": dict},
    ),
    EntryKind(
        "llm.rule_changed",
        Severity.NOTICE,
        required={"rule_id": int, "action": str, "rule": dict},
    ),
)


def register_all() -> None:
    register(*KINDS)
