from __future__ import annotations

from typing import Any

from apps.core.errors import QuarterdeckError
from apps.core.money import format_usd


class BudgetExceeded(QuarterdeckError):
    """A call would take a budget past its block threshold; it was not made.

    ``scope``/``scope_id`` name the narrowest budget that blocked; ``details`` lists every
    budget that would have been exceeded.
    """

    code = "budget_exceeded"
    status_code = 402
    default_message = "The budget would be exceeded; the call was not made."

    def __init__(
        self,
        *,
        scope: str,
        scope_id: str | None,
        budget_id: int,
        budget_name: str,
        window_key: str,
        limit_microusd: int,
        spent_microusd: int,
        reserved_microusd: int,
        requested_microusd: int,
        blocking: list[dict[str, Any]] | None = None,
    ) -> None:
        self.scope = scope
        self.scope_id = scope_id
        self.budget_id = budget_id
        self.budget_name = budget_name
        self.window_key = window_key
        self.limit_microusd = limit_microusd
        self.spent_microusd = spent_microusd
        self.reserved_microusd = reserved_microusd
        self.requested_microusd = requested_microusd
        who = f"{scope} {scope_id}" if scope_id else scope
        message = (
            f"The {scope} budget '{budget_name}' ({who}, {window_key}) would be exceeded: "
            f"{format_usd(spent_microusd, 4)} spent and {format_usd(reserved_microusd, 4)} held of "
            f"{format_usd(limit_microusd, 4)}; this call needs up to {format_usd(requested_microusd, 4)}."
        )
        super().__init__(
            message,
            details={
                "scope": scope,
                "scope_id": scope_id,
                "budget_id": budget_id,
                "budget_name": budget_name,
                "window_key": window_key,
                "limit_microusd": limit_microusd,
                "spent_microusd": spent_microusd,
                "reserved_microusd": reserved_microusd,
                "requested_microusd": requested_microusd,
                "blocking": blocking or [],
            },
        )
