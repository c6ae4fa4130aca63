"""The gateway's demo seeding can run again whatever rules people made since."""

from __future__ import annotations

from typing import Any

import pytest

from apps.llm.defaults import DEMO_RULE_NAME, seed_demo_llm
from apps.llm.models import RoutingRule
from apps.tenants.access import workspace_schema

pytestmark = pytest.mark.django_db


def test_seeding_the_demo_rule_again_tolerates_rules_of_the_same_name(acme: Any) -> None:
    with workspace_schema(acme):
        RoutingRule.objects.filter(name=DEMO_RULE_NAME).delete()
        seed_demo_llm(acme, {})
        seed_demo_llm(acme, {})
        assert RoutingRule.objects.filter(name=DEMO_RULE_NAME).count() == 1
        # Someone adds another rule of that name (through the API, say): seeding still works.
        RoutingRule.objects.create(name=DEMO_RULE_NAME, trigger_scope="crew", to_model="offline-small")
        seed_demo_llm(acme, {})
        assert RoutingRule.objects.filter(name=DEMO_RULE_NAME).count() == 2
