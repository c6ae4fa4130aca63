"""Stage a change to a CRM account; it ships (changes the account) when applied.

``stage`` records the change (keyed by the tool call, so it is idempotent) before governance
decides, and returns the diff reviewers see; ``run`` applies it once the call is allowed, or
leaves it staged for an operator when the crew holds CRM changes (``settings.crm_hold_changes``);
``discard`` drops it when the call is denied.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..models import CRM_EDITABLE_FIELDS, CrmAccount, CrmChange, CrmChangeStatus, CrmStage
from .base import ToolContext, ToolError

NAME = "crm_stage_update"
DESCRIPTION = (
    "Stage a change to a CRM account (stage, owner_email, plan or notes). The change ships when "
    "applied; reviewers may see the diff first."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "account": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Exact account name."},
        "changes": {
            "type": "object",
            "properties": {
                "stage": {"enum": list(CrmStage.values)},
                "owner_email": {"type": "string", "format": "email", "maxLength": 254},
                "plan": {"type": "string", "maxLength": 100},
                "notes": {"type": "string", "maxLength": 5000},
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
        "reason": {"type": "string", "maxLength": 1000},
    },
    "required": ["account", "changes"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = True


def _account(name: str) -> CrmAccount:
    account = CrmAccount.objects.filter(name__iexact=name.strip()).first()
    if account is None:
        raise ToolError(f"No CRM account is named {name!r}; look it up with crm_lookup first.")
    return account


@transaction.atomic
def stage(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    account = _account(args["account"])
    change = (
        CrmChange.objects.select_for_update().filter(mission_id=ctx.mission.pk, tool_call_id=ctx.tool_call_id).first()
    )
    before = {field: getattr(account, field) for field in args["changes"] if field in CRM_EDITABLE_FIELDS}
    if change is None:
        change = CrmChange(mission_id=ctx.mission.pk, tool_call_id=ctx.tool_call_id)
    if change.status == CrmChangeStatus.STAGED:
        # A reviewer may have edited the arguments: the staged change follows them.
        change.account = account
        change.changes = dict(args["changes"])
        change.before = before
        change.reason = args.get("reason", "")
        change.full_clean()
        change.save()
    return {"change_id": change.pk, "account": account.name, "status": change.status, "diff": change.diff()}


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    from ..services import crm_change_apply

    preview = stage(args, ctx)
    change = CrmChange.objects.get(pk=preview["change_id"])
    if change.status == CrmChangeStatus.STAGED and not ctx.crew.settings.get("crm_hold_changes"):
        change = crm_change_apply(change=change)
    return {"change_id": change.pk, "account": preview["account"], "status": change.status, "diff": change.diff()}


def discard(ctx: ToolContext) -> None:
    CrmChange.objects.filter(
        mission_id=ctx.mission.pk, tool_call_id=ctx.tool_call_id, status=CrmChangeStatus.STAGED
    ).update(status=CrmChangeStatus.DISCARDED)
