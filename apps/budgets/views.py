"""The budgets page of the portal: spend against limit for every budget, recent ledger."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.money import format_usd
from apps.tenants.pages import workspace_page

from . import selectors


@workspace_page("budgets.view")
def budget_overview(request: HttpRequest) -> HttpResponse:
    budgets = list(selectors.budget_list())
    current = selectors.budget_current_spend(budgets=budgets)
    rows = []
    for budget in budgets:
        spend = current.get(budget.pk)
        rows.append(
            {
                "budget": budget,
                "limit": format_usd(budget.limit_microusd),
                "spent": format_usd(spend.spent_microusd) if spend else "per mission",
                "held": format_usd(spend.reserved_microusd) if spend else "",
                "percent": min(spend.percent, 100) if spend else None,
                "percent_label": spend.percent if spend else None,
                "window_key": spend.window_key if spend else "",
                "state": (
                    "over"
                    if spend and spend.percent >= budget.block_percent
                    else "warn"
                    if spend and budget.warn_percent and spend.percent >= budget.warn_percent
                    else "ok"
                ),
            }
        )
    ledger = [
        {"entry": entry, "amount": format_usd(entry.amount_microusd, 6)} for entry in selectors.ledger_list()[:25]
    ]
    return render(request, "budgets/overview.html", {"rows": rows, "ledger": ledger})
