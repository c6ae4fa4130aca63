"""Routing: which model a call goes to, and why.

Preference chain: the request's explicit model, else the agent's model, else the crew's,
else the workspace default, else the global default set by super-admins. A named model that
is unknown, inactive or unpriced is skipped (and the skip is part of the journaled reason).

Tier downgrade: a routing rule moves a call to a cheaper model once a budget it counts
against has passed its warning threshold. The decision is taken inside the reservation
transaction, from the budget states read under their row locks (see
``apps.budgets.services.budget_try_reserve``), so it is exact, not a stale read.

Per-workspace settings and rules are cached in memory for ``LLM_ROUTING_CACHE_SECONDS``;
the services that change them invalidate this process's cache at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection as _connection

from apps.budgets.services import BudgetState

from .catalog.selectors import ResolvedModel, global_default_model_id, model_resolve
from .errors import NoModelAvailable
from .models import RoutingRule, TriggerScope, WorkspaceLlmSettings
from .types import CallContext, ChatRequest

connection: Any = _connection


@dataclass(frozen=True)
class RuleSnapshot:
    id: int
    name: str
    trigger_scope: str
    crew_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    to_model: str

    def applies_to(self, context: CallContext) -> bool:
        if self.crew_id is not None and self.crew_id != context.crew_id:
            return False
        return not (self.agent_id is not None and self.agent_id != context.agent_id)


@dataclass(frozen=True)
class RoutingConfig:
    default_model: str
    rules: tuple[RuleSnapshot, ...]
    expires_at: float


@dataclass(frozen=True)
class Route:
    model: ResolvedModel
    source: str  # explicit | agent | crew | workspace | global
    reason: str
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Downgrade:
    model: ResolvedModel
    rule: RuleSnapshot
    state: BudgetState

    @property
    def reason(self) -> str:
        line = self.state.line
        return (
            f"rule '{self.rule.name}': {line.scope} budget '{line.name}' is at {self.state.percent_used}% "
            f"(warning at {line.warn_percent}%), so {self.model.tier} tier"
        )


_configs: dict[str, RoutingConfig] = {}
_lock = threading.Lock()


def routing_invalidate() -> None:
    with _lock:
        _configs.pop(str(getattr(connection, "schema_name", "")), None)


def routing_config() -> RoutingConfig:
    schema = str(getattr(connection, "schema_name", ""))
    config = _configs.get(schema)
    if config is not None and config.expires_at > time.monotonic():
        return config
    default = WorkspaceLlmSettings.objects.filter(id=1).values_list("default_model", flat=True).first() or ""
    rules = tuple(
        RuleSnapshot(
            id=r.pk,
            name=r.name,
            trigger_scope=r.trigger_scope,
            crew_id=r.crew_id,
            agent_id=r.agent_id,
            to_model=r.to_model,
        )
        for r in RoutingRule.objects.filter(is_active=True).order_by("priority", "id")
    )
    ttl = float(getattr(settings, "LLM_ROUTING_CACHE_SECONDS", 5))
    config = RoutingConfig(default_model=default, rules=rules, expires_at=time.monotonic() + ttl)
    with _lock:
        _configs[schema] = config
    return config


def route_for(*, request: ChatRequest, context: CallContext) -> Route:
    config = routing_config()
    chain: list[tuple[str, str | None]] = [
        ("explicit", request.model or None),
        ("agent", context.agent_model),
        ("crew", context.crew_model),
        ("workspace", config.default_model or None),
        ("global", global_default_model_id()),
    ]
    skipped: list[str] = []
    for source, model_id in chain:
        if not model_id:
            continue
        model = model_resolve(model_id=model_id)
        if model is None:
            skipped.append(f"{source} model '{model_id}' is not an active, priced catalog model")
            continue
        reason = f"{source} model" if not skipped else f"{source} model ({'; '.join(skipped)})"
        return Route(model=model, source=source, reason=reason, skipped=tuple(skipped))
    raise NoModelAvailable(
        "No model is configured for this call: set the agent's, the crew's, the workspace's or the global default.",
        details={"skipped": skipped},
    )


def downgrade_for(*, model: ResolvedModel, context: CallContext, states: Sequence[BudgetState]) -> Downgrade | None:
    """The first rule that applies and whose trigger budget is past its warning threshold,
    if its target is a lower tier than ``model``."""
    config = routing_config()
    if not config.rules:
        return None
    warned = [s for s in states if s.past_warning]
    if not warned:
        return None
    for rule in config.rules:
        if not rule.applies_to(context):
            continue
        trigger = next(
            (s for s in warned if rule.trigger_scope in (TriggerScope.ANY, s.line.scope)),
            None,
        )
        if trigger is None:
            continue
        target = model_resolve(model_id=rule.to_model)
        if target is None or target.tier_rank >= model.tier_rank:
            continue  # never "downgrade" sideways or up, and never to an unusable model
        return Downgrade(model=target, rule=rule, state=trigger)
    return None
