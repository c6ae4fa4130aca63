"""Demo secrets: one per tier, with values generated at seed time (nothing secret in the repo).

Grants need crew ids, which belong to the crews app; its demo seeder grants what its crews
use (``apps.vault.services.grant_create``), since the vault never imports crews.
"""

from __future__ import annotations

import secrets as _random
from typing import Any

from .models import Secret, SecretKind, Tier
from .services import secret_create

DEMO_SECRETS = (
    ("smtp-password", SecretKind.PASSWORD, Tier.L1, "Outgoing mail for customer replies."),
    ("crm-api-key", SecretKind.API_KEY, Tier.L2, "Read and update contacts and deals in the CRM."),
    ("billing-api-key", SecretKind.API_KEY, Tier.L3, "Refunds and credits in the billing system, per mission."),
    ("prod-db-root", SecretKind.PASSWORD, Tier.L4, "Production database superuser: a person approves every use."),
)


def seed_demo_vault(workspace: Any, users: dict[str, Any]) -> None:
    existing = set(Secret.objects.filter(name__in=[name for name, *_ in DEMO_SECRETS]).values_list("name", flat=True))
    for name, kind, tier, description in DEMO_SECRETS:
        if name not in existing:
            secret_create(
                name=name,
                value=f"demo_{_random.token_urlsafe(24)}",
                kind=kind,
                tier=tier,
                description=description,
            )
