"""Changing the catalog (super-admins, through the admin or commands)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.core.errors import ValidationFailed

from .models import CatalogModel, GlobalRouting, ModelFallback, ModelPrice
from .seed import seed_catalog
from .selectors import catalog_invalidate


def _invalidate_catalog() -> None:
    # Now for this process, and again after the commit for reads made in between.
    catalog_invalidate()
    transaction.on_commit(catalog_invalidate)


@transaction.atomic
def model_price_add(
    *,
    model: CatalogModel,
    input_per_mtok: int,
    output_per_mtok: int,
    cache_read_per_mtok: int,
    cache_write_per_mtok: int,
    effective_from: datetime | None = None,
    source: str = "",
) -> ModelPrice:
    """Add the next price version. Old versions stay: ledger entries point at them."""
    # Lock the model row so two admins adding prices cannot both take the same version.
    CatalogModel.objects.select_for_update().filter(pk=model.pk).first()
    version = (ModelPrice.objects.filter(model=model).aggregate(v=Max("version"))["v"] or 0) + 1
    price = ModelPrice(
        model=model,
        version=version,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cache_read_per_mtok=cache_read_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
        effective_from=effective_from or timezone.now(),
        source=source,
    )
    price.full_clean()
    price.save()
    _invalidate_catalog()
    return price


@transaction.atomic
def model_fallbacks_set(*, model: CatalogModel, fallbacks: list[str]) -> list[ModelFallback]:
    if model.model_id in fallbacks:
        raise ValidationFailed("A model cannot fall back to itself.", details={"fallbacks": [model.model_id]})
    if len(set(fallbacks)) != len(fallbacks):
        raise ValidationFailed("A fallback is listed twice.", details={"fallbacks": fallbacks})
    known = set(CatalogModel.objects.filter(model_id__in=fallbacks).values_list("model_id", flat=True))
    missing = [name for name in fallbacks if name not in known]
    if missing:
        raise ValidationFailed("Unknown fallback models.", details={"fallbacks": missing})
    ModelFallback.objects.filter(model=model).delete()
    rows = ModelFallback.objects.bulk_create(
        [ModelFallback(model=model, fallback_id=name, position=i) for i, name in enumerate(fallbacks, start=1)]
    )
    _invalidate_catalog()
    return rows


@transaction.atomic
def global_default_set(*, model_id: str | None) -> GlobalRouting:
    routing, _ = GlobalRouting.objects.select_for_update().get_or_create(id=1)
    routing.default_model = CatalogModel.objects.filter(model_id=model_id).first() if model_id else None
    if model_id and routing.default_model is None:
        raise ValidationFailed("Unknown model.", details={"default_model": [model_id]})
    routing.full_clean()
    routing.save()
    _invalidate_catalog()
    return routing


@transaction.atomic
def catalog_seed() -> dict[str, int]:
    created = seed_catalog(CatalogModel, ModelPrice, ModelFallback, GlobalRouting)
    _invalidate_catalog()
    return created
