"""Reading routing configuration and the call records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet

from apps.core.errors import ValidationFailed

from .models import LlmCall, RoutingRule

CALL_FILTERS = ("status", "model", "crew_id", "mission_id", "agent_id", "request_id")


def routing_rule_list() -> QuerySet[RoutingRule]:
    return RoutingRule.objects.order_by("priority", "id")


def llm_call_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[LlmCall]:
    queryset = LlmCall.objects.defer("response")
    for key, value in (filters or {}).items():
        if value in (None, ""):
            continue
        if key not in CALL_FILTERS:
            raise ValidationFailed(f"Unknown filter {key!r}.", details={key: ["Unknown filter."]})
        queryset = queryset.filter(**{key: value})
    return queryset.order_by("-id")


def llm_call_get(*, pk: int) -> LlmCall:
    return LlmCall.objects.get(pk=pk)
