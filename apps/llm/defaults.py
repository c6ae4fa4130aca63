"""Per-workspace defaults and demo data for the gateway."""

from __future__ import annotations

from typing import Any

from .models import WorkspaceLlmSettings

# The demo runs without network: its workspace routes to the offline provider by default.
DEMO_DEFAULT_MODEL = "offline-medium"
DEMO_RULE_NAME = "Save money near the limit"


def workspace_llm_defaults(workspace: Any) -> None:
    WorkspaceLlmSettings.objects.get_or_create(id=1)


def seed_demo_llm(workspace: Any, users: dict[str, Any]) -> None:
    from .models import RoutingRule

    settings_row, _ = WorkspaceLlmSettings.objects.get_or_create(id=1)
    if not settings_row.default_model:
        settings_row.default_model = DEMO_DEFAULT_MODEL
        settings_row.save(update_fields=["default_model", "updated_at"])
    # Names are not unique: people (or the API) may have made rules of the same name since,
    # so this looks for one instead of getting exactly one, and seeding stays repeatable.
    if not RoutingRule.objects.filter(name=DEMO_RULE_NAME).exists():
        RoutingRule.objects.create(name=DEMO_RULE_NAME, trigger_scope="any", to_model="offline-small", priority=100)
