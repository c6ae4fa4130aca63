from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apps.budgets.services import Charge, Pricing, Scopes
from apps.llm import routing
from apps.llm.catalog.selectors import catalog_invalidate
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

PRICING = Pricing(
    model="claude-haiku-4-5",
    price_id=42,
    price_version=3,
    input_per_mtok=1_000_000,
    output_per_mtok=5_000_000,
    cache_read_per_mtok=100_000,
    cache_write_per_mtok=1_250_000,
)


@pytest.fixture(autouse=True)
def _fresh_llm_caches() -> Iterator[None]:
    catalog_invalidate()
    routing._configs.clear()
    yield
    catalog_invalidate()
    routing._configs.clear()


@pytest.fixture
def in_acme(db: None, acme: Workspace) -> Iterator[Workspace]:
    """Run the test with acme's schema active (inside the rolled-back test transaction)."""
    with workspace_schema(acme):
        yield acme


@pytest.fixture
def scopes() -> Scopes:
    """A fresh crew/mission/agent chain: no other test's budgets apply to it."""
    return Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())


def charge(amount: int, **extra: Any) -> Charge:
    return Charge(amount_microusd=amount, pricing=PRICING, input_tokens=100, max_tokens=50, **extra)
