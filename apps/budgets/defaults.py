"""Demo data for budgets: a monthly workspace budget with warnings, so the demo's ledger and
spend pages have something to measure against."""

from __future__ import annotations

from typing import Any

from .models import Budget, Mode, Scope, Window


def seed_demo_budgets(workspace: Any, users: dict[str, Any]) -> None:
    if Budget.objects.filter(scope=Scope.WORKSPACE, name="Monthly model spend").exists():
        return
    from .services import budget_create

    budget_create(
        name="Monthly model spend",
        scope=Scope.WORKSPACE,
        window=Window.MONTH,
        mode=Mode.TIERED,
        limit_microusd=50_000_000,  # $50
    )
