"""Demo data: the demo crew's customer email waits for Rita, the demo reviewer."""

from __future__ import annotations

from typing import Any

from apps.tenants.models import Workspace

from . import services
from .models import Policy, PolicyAction, TimeoutAction

DEMO_POLICY = "Customer email waits for Rita"
NOTES_POLICY = "Notes in the crew's own volume are routine"


def seed(workspace: Workspace, users: dict[str, Any]) -> None:
    """Runs in the demo schema; idempotent."""
    if not Policy.objects.filter(name=NOTES_POLICY).exists():
        services.policy_create(
            fields={
                "name": NOTES_POLICY,
                "description": "The responder drafts in a note first; that needs nobody's approval.",
                "priority": 50,
                "tool_pattern": "write_note",
                "action": PolicyAction.ALLOW,
            }
        )
    if Policy.objects.filter(name=DEMO_POLICY).exists():
        return
    rita = users.get("rita")
    services.policy_create(
        fields={
            "name": DEMO_POLICY,
            "description": "Email leaving the company is read by a person first.",
            "priority": 10,
            "tool_pattern": "send_email",
            "conditions": [{"path": "", "op": "outside_domains"}],
            "action": PolicyAction.REQUIRE_SYNC,
            "approver_roles": [] if rita is not None else ["reviewer"],
            "approver_user_ids": [rita.pk] if rita is not None else [],
            "required_approvals": 1,
            "segregation_of_duties": True,
            "timeout_seconds": 3600,
            "timeout_action": TimeoutAction.ESCALATE,
            "escalate_to_roles": ["owner"],
            "escalation_timeout_seconds": 1800,
            "escalation_timeout_action": "deny",
        }
    )
