"""Models the provider has retired leave the catalog's routing: inactive (their prices stay,
for the ledger's history) and out of every fallback list, as migration llm_catalog/0003 does
to a catalog seeded before claude-sonnet-4-5's end of life."""

from __future__ import annotations

import pytest

from apps.llm.catalog.models import CatalogModel, ModelFallback, ModelPrice
from apps.llm.catalog.seed import retire_models
from apps.llm.catalog.selectors import catalog_invalidate, model_resolve

pytestmark = pytest.mark.django_db


def _fallbacks(model_id: str) -> list[str]:
    return list(ModelFallback.objects.filter(model_id=model_id).order_by("position").values_list("fallback", flat=True))


def test_a_fresh_catalog_has_the_retired_model_inactive_and_in_no_fallback_list() -> None:
    retired = CatalogModel.objects.get(model_id="claude-sonnet-4-5")
    assert not retired.is_active
    assert ModelPrice.objects.filter(model=retired).exists()
    assert not ModelFallback.objects.filter(fallback=retired).exists()
    assert _fallbacks("claude-opus-4-5") == ["claude-sonnet-4-6"]
    assert _fallbacks("claude-sonnet-4-6") == ["claude-haiku-4-5"]


def test_retiring_a_catalog_seeded_before_the_end_of_life() -> None:
    # The catalog as the earlier seed left it: the model active and a fallback of two others.
    CatalogModel.objects.filter(model_id="claude-sonnet-4-5").update(is_active=True)
    ModelFallback.objects.filter(model_id__in=["claude-opus-4-5", "claude-sonnet-4-6"]).delete()
    ModelFallback.objects.create(model_id="claude-opus-4-5", fallback_id="claude-sonnet-4-5", position=1)
    ModelFallback.objects.create(model_id="claude-sonnet-4-6", fallback_id="claude-sonnet-4-5", position=1)
    ModelFallback.objects.create(model_id="claude-sonnet-4-6", fallback_id="claude-haiku-4-5", position=2)

    assert retire_models(CatalogModel, ModelFallback) == ["claude-sonnet-4-5"]

    assert not CatalogModel.objects.get(model_id="claude-sonnet-4-5").is_active
    assert _fallbacks("claude-opus-4-5") == ["claude-sonnet-4-6"]  # its only fallback: replaced
    assert _fallbacks("claude-sonnet-4-6") == ["claude-haiku-4-5"]  # another was left: dropped
    catalog_invalidate()
    resolved = model_resolve(model_id="claude-opus-4-5")
    assert resolved is not None and resolved.fallbacks == ("claude-sonnet-4-6",)
    # Run again, nothing changes.
    assert retire_models(CatalogModel, ModelFallback) == ["claude-sonnet-4-5"]
    assert _fallbacks("claude-opus-4-5") == ["claude-sonnet-4-6"]
