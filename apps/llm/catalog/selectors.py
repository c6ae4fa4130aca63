"""Reading the catalog. The gateway resolves a model on every call, so the active catalog is
loaded whole (three queries) and kept in memory for ``LLM_CATALOG_CACHE_SECONDS``; services
that change it call ``catalog_invalidate()``, other processes pick changes up within the TTL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from .models import CatalogModel, GlobalRouting, ModelFallback, ModelPrice, Tier


@dataclass(frozen=True)
class PriceSnapshot:
    """The price version a call is charged at; copied into every ledger entry."""

    id: int
    version: int
    input_per_mtok: int
    output_per_mtok: int
    cache_read_per_mtok: int
    cache_write_per_mtok: int


@dataclass(frozen=True)
class ResolvedModel:
    model_id: str
    display_name: str
    provider: str
    wire_name: str
    endpoint: str
    tier: str
    context_window: int
    max_output_tokens: int
    price: PriceSnapshot
    fallbacks: tuple[str, ...]

    @property
    def tier_rank(self) -> int:
        return Tier.rank(self.tier)


@dataclass(frozen=True)
class _Snapshot:
    models: dict[str, ResolvedModel]
    default_model: str | None
    expires_at: float  # time.monotonic()


_lock = threading.Lock()
_snapshot: _Snapshot | None = None


def catalog_invalidate() -> None:
    global _snapshot
    with _lock:
        _snapshot = None


def _load() -> _Snapshot:
    now = timezone.now()
    ttl = float(getattr(settings, "LLM_CATALOG_CACHE_SECONDS", 30))
    expires_at = time.monotonic() + ttl
    prices: dict[str, ModelPrice] = {}
    price: ModelPrice | None
    next_change: datetime | None = None
    for price in ModelPrice.objects.filter(model__is_active=True).order_by("model_id", "-effective_from", "-version"):
        if price.effective_from > now:
            next_change = price.effective_from if next_change is None else min(next_change, price.effective_from)
            continue
        prices.setdefault(price.model_id, price)
    if next_change is not None:
        # A scheduled price change must take effect on time, not up to a TTL late.
        expires_at = min(expires_at, time.monotonic() + max(0.0, (next_change - now).total_seconds()))
    fallbacks: dict[str, list[str]] = {}
    for fb in ModelFallback.objects.filter(fallback__is_active=True).order_by("model_id", "position"):
        fallbacks.setdefault(fb.model_id, []).append(fb.fallback_id)
    models: dict[str, ResolvedModel] = {}
    for model in CatalogModel.objects.active():
        price = prices.get(model.model_id)
        if price is None:
            continue  # a model without a price cannot be budgeted, so it cannot be routed to
        models[model.model_id] = ResolvedModel(
            model_id=model.model_id,
            display_name=model.display_name,
            provider=model.provider,
            wire_name=model.wire_name,
            endpoint=model.endpoint,
            tier=model.tier,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            price=PriceSnapshot(
                id=price.pk,
                version=price.version,
                input_per_mtok=price.input_per_mtok,
                output_per_mtok=price.output_per_mtok,
                cache_read_per_mtok=price.cache_read_per_mtok,
                cache_write_per_mtok=price.cache_write_per_mtok,
            ),
            fallbacks=tuple(fallbacks.get(model.model_id, ())),
        )
    routing = GlobalRouting.objects.filter(id=1).values_list("default_model_id", flat=True).first()
    return _Snapshot(models=models, default_model=routing, expires_at=expires_at)


def _current() -> _Snapshot:
    global _snapshot
    snap = _snapshot
    if snap is not None and snap.expires_at > time.monotonic():
        return snap
    fresh = _load()
    with _lock:
        _snapshot = fresh
    return fresh


def model_resolve(*, model_id: str) -> ResolvedModel | None:
    """The active, priced model named ``model_id``, or None."""
    return _current().models.get(model_id)


def model_list_routable() -> list[ResolvedModel]:
    return sorted(_current().models.values(), key=lambda m: (m.provider, -m.tier_rank, m.model_id))


def global_default_model_id() -> str | None:
    return _current().default_model


def catalog_model_list() -> QuerySet[CatalogModel]:
    return CatalogModel.objects.prefetch_related("prices").order_by("provider", "tier", "model_id")
