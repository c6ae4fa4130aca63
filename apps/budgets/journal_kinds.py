"""Journal entry kinds written by the budgets app."""

from __future__ import annotations

from apps.audit.catalog import EntryKind, Severity, TypeSpec, register

NONE = type(None)
OPT_STR = (str, NONE)
OPT_INT = (int, NONE)

_CALL: dict[str, TypeSpec] = {"model": str, "price_id": OPT_INT, "price_version": OPT_INT}

KINDS = (
    EntryKind(
        "budget.reserved",
        Severity.INFO,
        required={"reservation_id": str, "amount_microusd": int, "budget_ids": list, "window_keys": list},
        optional={**_CALL, "input_tokens": int, "max_tokens": int, "replaced_reservation_id": str},
        description="A call's worst case was reserved against every applicable budget window.",
    ),
    EntryKind(
        "budget.settled",
        Severity.INFO,
        required={"reservation_id": str, "amount_microusd": int, "released_microusd": int},
        optional={
            **_CALL,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "overrun_microusd": int,
        },
        description="A call's reservation was settled to its actual cost.",
    ),
    EntryKind(
        "budget.released",
        Severity.INFO,
        required={"reservation_id": str, "released_microusd": int, "reason": str},
        optional={"model": str},
        description="A reservation was released without spend (the call failed or was not made).",
    ),
    EntryKind(
        "budget.exceeded",
        Severity.WARNING,
        required={
            "budget_id": int,
            "budget_name": str,
            "scope": str,
            "scope_id": OPT_STR,
            "window_key": str,
            "limit_microusd": int,
            "spent_microusd": int,
            "reserved_microusd": int,
            "requested_microusd": int,
        },
        optional={**_CALL, "blocking_budget_ids": list},
        description="A call was blocked because it would exceed a budget; it did not leave the box.",
    ),
    EntryKind(
        "budget.warning",
        Severity.WARNING,
        required={
            "budget_id": int,
            "budget_name": str,
            "scope": str,
            "scope_id": OPT_STR,
            "window_key": str,
            "level": str,
            "percent": int,
            "spent_microusd": int,
            "limit_microusd": int,
        },
        description="A budget passed a threshold in this window (once per window and level).",
    ),
    EntryKind(
        "budget.created",
        Severity.NOTICE,
        required={"budget_id": int, "budget": dict},
    ),
    EntryKind(
        "budget.updated",
        Severity.NOTICE,
        required={"budget_id": int, "changes": dict},
    ),
    EntryKind(
        "budget.archived",
        Severity.NOTICE,
        required={"budget_id": int, "name": str},
    ),
    EntryKind(
        "budget.adjusted",
        Severity.NOTICE,
        required={"amount_microusd": int, "budget_ids": list, "window_keys": list, "note": str},
    ),
    EntryKind(
        "budget.totals_rebuilt",
        Severity.NOTICE,
        required={"differences": int, "applied": bool},
        optional={"sample": list},
    ),
    EntryKind(
        "budget.stale_settled",
        Severity.WARNING,
        required={"reservation_id": str, "amount_microusd": int, "age_seconds": int},
        description="A reservation left by a dead process was settled at its worst case.",
    ),
)


def register_all() -> None:
    register(*KINDS)
