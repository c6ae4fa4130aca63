"""Changing a workspace's routing: its default model and its tier-downgrade rules."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import journal_append
from apps.core.errors import ValidationFailed

from .catalog.models import CatalogModel
from .catalog.selectors import model_resolve
from .models import RoutingRule, TriggerScope, WorkspaceLlmSettings
from .routing import routing_invalidate


def _invalidate_routing() -> None:
    # Now (this process's next read, in this transaction, sees the change) and again after
    # the commit (a read in between may have cached the old rows).
    routing_invalidate()
    transaction.on_commit(routing_invalidate)


def _require_routable(field: str, model_id: str) -> None:
    if model_resolve(model_id=model_id) is None:
        known = CatalogModel.objects.filter(model_id=model_id).exists()
        reason = "is inactive or has no price" if known else "is not in the catalog"
        raise ValidationFailed(f"Model {model_id!r} {reason}.", details={field: [f"{model_id!r} {reason}."]})


@transaction.atomic
def workspace_llm_settings_update(*, default_model: str) -> WorkspaceLlmSettings:
    if default_model:
        _require_routable("default_model", default_model)
    row, _ = WorkspaceLlmSettings.objects.select_for_update().get_or_create(id=1)
    before = row.default_model
    row.default_model = default_model
    row.full_clean()
    row.save()
    if before != default_model:
        journal_append(
            kind="llm.settings_changed", payload={"changes": {"default_model": {"from": before, "to": default_model}}}
        )
    _invalidate_routing()
    return row


def workspace_llm_settings_get() -> WorkspaceLlmSettings:
    row, _ = WorkspaceLlmSettings.objects.get_or_create(id=1)
    return row


def _rule_dict(rule: RoutingRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "trigger_scope": rule.trigger_scope,
        "crew_id": str(rule.crew_id) if rule.crew_id else None,
        "agent_id": str(rule.agent_id) if rule.agent_id else None,
        "to_model": rule.to_model,
        "priority": rule.priority,
        "is_active": rule.is_active,
    }


def _save_rule(rule: RoutingRule, action: str) -> RoutingRule:
    if rule.trigger_scope not in TriggerScope.values:
        raise ValidationFailed(details={"trigger_scope": [f"Unknown scope {rule.trigger_scope!r}."]})
    _require_routable("to_model", rule.to_model)
    try:
        rule.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("The rule is not valid.", details=exc.message_dict) from exc
    rule.save()
    journal_append(kind="llm.rule_changed", payload={"rule_id": rule.pk, "action": action, "rule": _rule_dict(rule)})
    _invalidate_routing()
    return rule


@transaction.atomic
def routing_rule_create(
    *,
    name: str,
    to_model: str,
    trigger_scope: str = TriggerScope.ANY,
    crew_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    priority: int = 100,
    is_active: bool = True,
) -> RoutingRule:
    rule = RoutingRule(
        name=name,
        to_model=to_model,
        trigger_scope=trigger_scope,
        crew_id=crew_id,
        agent_id=agent_id,
        priority=priority,
        is_active=is_active,
    )
    return _save_rule(rule, "created")


_RULE_FIELDS = ("name", "to_model", "trigger_scope", "crew_id", "agent_id", "priority", "is_active")


@transaction.atomic
def routing_rule_update(*, rule: RoutingRule, **changes: Any) -> RoutingRule:
    unknown = set(changes) - set(_RULE_FIELDS)
    if unknown:
        raise ValidationFailed(details={name: ["Cannot be changed."] for name in sorted(unknown)})
    rule = RoutingRule.objects.select_for_update().get(pk=rule.pk)
    for key, value in changes.items():
        setattr(rule, key, value)
    return _save_rule(rule, "updated")


@transaction.atomic
def routing_rule_delete(*, rule: RoutingRule) -> None:
    payload = {"rule_id": rule.pk, "action": "deleted", "rule": _rule_dict(rule)}
    rule.delete()
    journal_append(kind="llm.rule_changed", payload=payload)
    _invalidate_routing()
