"""How a request looks to a reviewer: one context builder for the inbox page and the live push,
so a card rendered by the page and a card pushed over the WebSocket are the same HTML."""

from __future__ import annotations

import json
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from apps.core.money import format_usd
from apps.tenants.urlconf import workspace_reverse

from .models import ApprovalEvent, ApprovalRequest
from .registry import MissionInfo


def diff_rows(diff: Any) -> list[dict[str, Any]] | None:
    """Rows of (field, before, after) from the shapes staged-change tools return:
    ``[{"field", "before", "after"}]``, ``{"diff": [...]}``, ``{"changes": {field: {"before", "after"}}}``
    or ``{field: [before, after]}``. None when the diff has none of these shapes."""
    if diff is None:
        return None
    if isinstance(diff, dict):
        for key in ("diff", "changes"):
            if key in diff and isinstance(diff[key], (list, dict)):
                return diff_rows(diff[key])
        rows = []
        for field, value in diff.items():
            if isinstance(value, dict) and ({"before", "after"} & set(value) or {"from", "to"} & set(value)):
                rows.append(
                    {
                        "field": field,
                        "before": value.get("before", value.get("from")),
                        "after": value.get("after", value.get("to")),
                    }
                )
            elif isinstance(value, list) and len(value) == 2:
                rows.append({"field": field, "before": value[0], "after": value[1]})
            else:
                return None
        return _display(rows)
    if isinstance(diff, list) and all(isinstance(row, dict) and "field" in row for row in diff):
        return _display(
            [{"field": row["field"], "before": row.get("before"), "after": row.get("after")} for row in diff]
        )
    return None


def _display(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def show(value: Any) -> str:
        if value is None:
            return "—"
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return [{"field": row["field"], "before": show(row["before"]), "after": show(row["after"])} for row in rows]


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def seconds_left(request: ApprovalRequest) -> int | None:
    if request.deadline is None or not request.is_pending:
        return None
    return max(0, int((request.deadline - timezone.now()).total_seconds()))


def card_context(
    request: ApprovalRequest,
    *,
    slug: str,
    can_decide: bool,
    mission: MissionInfo | None = None,
    events: list[ApprovalEvent] | None = None,
) -> dict[str, Any]:
    cost = request.mission_cost_microusd
    if mission is not None and mission.cost_microusd is not None:
        cost = mission.cost_microusd
    return {
        "r": request,
        "can_decide": can_decide and request.is_pending,
        "decide_url": workspace_reverse(slug, "approvals:decide", request_id=request.pk),
        "mission_url": mission.url if mission is not None else "",
        "mission_status": mission.status if mission is not None else "",
        "goal": (mission.goal if mission is not None and mission.goal else request.mission_goal),
        "mission_cost": format_usd(cost, 4),
        "estimated_cost": format_usd(request.estimated_cost_microusd, 4),
        "arguments_json": pretty(request.arguments),
        "final_arguments_json": pretty(request.final_arguments),
        "diff_rows": diff_rows(request.diff),
        "diff_json": pretty(request.diff) if request.diff is not None else "",
        "seconds_left": seconds_left(request),
        "events": events if events is not None else [],
        "policy_name": request.policy_snapshot.get("name", "") or "autonomy default",
    }


def render_card(request: ApprovalRequest, **kwargs: Any) -> str:
    return render_to_string("approvals/_request_card.html", card_context(request, **kwargs))


def request_json(request: ApprovalRequest) -> dict[str, Any]:
    """The request as plain JSON (pushes and the REST API's compact form)."""
    return {
        "id": str(request.pk),
        "status": request.status,
        "resolution": request.resolution,
        "mode": request.mode,
        "tool_name": request.tool_name,
        "tool_call_id": request.tool_call_id,
        "mission_id": str(request.mission_id),
        "crew_id": str(request.crew_id),
        "agent_id": str(request.agent_id),
        "crew_name": request.crew_name,
        "agent_name": request.agent_name,
        "mission_goal": request.mission_goal,
        "mission_cost_microusd": request.mission_cost_microusd,
        "arguments": request.arguments,
        "edited_arguments": request.edited_arguments,
        "diff": request.diff,
        "reasoning": request.reasoning,
        "policy": request.policy_snapshot.get("name", ""),
        "approver_roles": request.approver_roles,
        "approver_user_ids": request.approver_user_ids,
        "required_approvals": request.required_approvals,
        "escalation_level": request.escalation_level,
        "deadline": request.deadline.isoformat() if request.deadline else None,
        "created_at": request.created_at.isoformat() if request.created_at else None,
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "decided_by": request.decided_by_label,
        "decision_comment": request.decision_comment,
    }
