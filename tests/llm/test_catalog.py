"""The model catalog (public schema), its seed, price versions, and provider credentials."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.llm.catalog.models import CatalogModel, GlobalRouting, ModelFallback, ModelPrice, Tier
from apps.llm.catalog.seed import SEED_MODELS
from apps.llm.catalog.selectors import catalog_invalidate, global_default_model_id, model_resolve
from apps.llm.catalog.services import catalog_seed, global_default_set, model_fallbacks_set, model_price_add
from apps.llm.credentials import (
    ProviderCredential,
    register_credential_resolver,
    resolve_credential,
    unregister_credential_resolver,
)

pytestmark = pytest.mark.django_db


def test_seed_has_current_anthropic_models_in_three_tiers_with_cache_prices() -> None:
    anthropic = CatalogModel.objects.filter(provider="anthropic")
    tiers = {m.model_id: m.tier for m in anthropic}
    assert tiers["claude-opus-4-6"] == Tier.LARGE
    assert tiers["claude-sonnet-4-6"] == Tier.MEDIUM
    assert tiers["claude-haiku-4-5"] == Tier.SMALL
    haiku = ModelPrice.objects.get(model_id="claude-haiku-4-5")
    assert (haiku.input_per_mtok, haiku.output_per_mtok) == (1_000_000, 5_000_000)
    assert (haiku.cache_read_per_mtok, haiku.cache_write_per_mtok) == (100_000, 1_250_000)
    opus = ModelPrice.objects.get(model_id="claude-opus-4-1")
    assert (opus.input_per_mtok, opus.output_per_mtok) == (15_000_000, 75_000_000)
    assert GlobalRouting.objects.get(id=1).default_model_id == "claude-sonnet-4-6"


def test_seeding_again_changes_nothing() -> None:
    before = (CatalogModel.objects.count(), ModelPrice.objects.count(), ModelFallback.objects.count())
    assert catalog_seed() == {"models": 0, "prices": 0, "fallbacks": 0, "default": 0}
    after = (CatalogModel.objects.count(), ModelPrice.objects.count(), ModelFallback.objects.count())
    assert before == after
    assert len(SEED_MODELS) <= after[0]


def test_the_newest_effective_price_wins_and_versions_count_up() -> None:
    model = CatalogModel.objects.get(model_id="offline-medium")
    future = model_price_add(model=model, input_per_mtok=9, output_per_mtok=9, cache_read_per_mtok=9,
                             cache_write_per_mtok=9, effective_from=timezone.now() + timedelta(days=1))  # fmt: skip
    current = model_price_add(model=model, input_per_mtok=4_000_000, output_per_mtok=20_000_000,
                              cache_read_per_mtok=400_000, cache_write_per_mtok=5_000_000)  # fmt: skip
    assert (future.version, current.version) == (2, 3)
    resolved = model_resolve(model_id="offline-medium")
    assert resolved is not None and resolved.price.id == current.pk  # the future price is not yet in force


def test_inactive_or_unpriced_models_are_not_routable() -> None:
    CatalogModel.objects.filter(model_id="claude-opus-4-1").update(is_active=False)
    CatalogModel.objects.create(model_id="unpriced", display_name="x", provider="offline", tier="small",
                                context_window=1, max_output_tokens=1)  # fmt: skip
    catalog_invalidate()
    assert model_resolve(model_id="claude-opus-4-1") is None
    assert model_resolve(model_id="unpriced") is None
    assert model_resolve(model_id="claude-opus-4-5") is not None


def test_fallbacks_and_global_default_are_validated() -> None:
    model = CatalogModel.objects.get(model_id="offline-large")
    with pytest.raises(ValidationFailed):
        model_fallbacks_set(model=model, fallbacks=["offline-large"])
    with pytest.raises(ValidationFailed):
        model_fallbacks_set(model=model, fallbacks=["nope"])
    model_fallbacks_set(model=model, fallbacks=["offline-small", "offline-medium"])
    resolved = model_resolve(model_id="offline-large")
    assert resolved is not None and resolved.fallbacks == ("offline-small", "offline-medium")
    with pytest.raises(ValidationFailed):
        global_default_set(model_id="nope")
    global_default_set(model_id="offline-medium")
    assert global_default_model_id() == "offline-medium"


@pytest.fixture
def extra_resolver() -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def resolver(provider: str, model: Any) -> ProviderCredential | None:
        seen.append((provider, model.model_id))
        return ProviderCredential(api_key="from-vault") if provider == "anthropic" else None

    register_credential_resolver("test-vault", resolver, priority=1)
    yield seen
    unregister_credential_resolver("test-vault")


def test_credential_resolvers_are_asked_in_priority_order(extra_resolver: list[tuple[str, str]], settings: Any) -> None:
    settings.LLM_ANTHROPIC_API_KEY = "from-settings"
    settings.LLM_ANTHROPIC_BASE_URL = "http://127.0.0.1:1"
    haiku = model_resolve(model_id="claude-haiku-4-5")
    offline_model = model_resolve(model_id="offline-small")
    assert haiku is not None and offline_model is not None
    credential = resolve_credential(provider="anthropic", model=haiku)
    assert credential is not None and credential.api_key == "from-vault"
    assert "from-vault" not in repr(credential)  # keys stay out of logs
    # The vault resolver passes for other providers; settings answer.
    assert resolve_credential(provider="offline", model=offline_model) == ProviderCredential()
    unregister_credential_resolver("test-vault")
    credential = resolve_credential(provider="anthropic", model=haiku)
    assert credential == ProviderCredential(api_key="from-settings", base_url="http://127.0.0.1:1")
