"""Look up accounts in the workspace's CRM by name, domain or contact email. Read-only."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from ..models import CrmAccount
from .base import ToolContext

NAME = "crm_lookup"
DESCRIPTION = "Find CRM accounts by company name, email domain or a contact's email. Returns at most 5 accounts."
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "minLength": 2, "maxLength": 200}},
    "required": ["query"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = False


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    query = args["query"].strip()
    domain = query.rsplit("@", 1)[-1].lower()
    accounts = CrmAccount.objects.filter(
        Q(name__icontains=query) | Q(domain__iexact=domain) | Q(contacts__icontains=query)
    ).order_by("name")[:5]
    return {"accounts": [account.as_record() for account in accounts]}
