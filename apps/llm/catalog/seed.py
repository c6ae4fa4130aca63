"""The catalog's seed: current Anthropic models plus the offline models used by the demo.

Prices are Anthropic's published list prices per million tokens (platform.claude.com,
"Model pricing"): base input, output, cache hits, and 5-minute cache writes. They are stored
in micro-USD. Seeding is idempotent and never overwrites what a super-admin changed: it adds
missing models, a first price for a model without one, fallbacks for a model without any,
and the global default when none is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

PRICE_SOURCE = "platform.claude.com/docs/en/about-claude/pricing"
SEED_EFFECTIVE_FROM = datetime(2025, 1, 1, tzinfo=UTC)


def _usd(amount: str) -> int:
    from decimal import Decimal

    return int(Decimal(amount) * 1_000_000)


@dataclass(frozen=True)
class SeedModel:
    model_id: str
    display_name: str
    provider: str
    tier: str
    context_window: int
    max_output_tokens: int
    input_usd: str
    output_usd: str
    cache_read_usd: str
    cache_write_usd: str
    fallbacks: tuple[str, ...] = ()
    # The provider's end of life for the model: it is seeded inactive (the catalog keeps its
    # prices for the ledger's history), and never offered as a fallback.
    retired_on: date | None = None
    source: str = PRICE_SOURCE

    def price_fields(self) -> dict[str, int]:
        return {
            "input_per_mtok": _usd(self.input_usd),
            "output_per_mtok": _usd(self.output_usd),
            "cache_read_per_mtok": _usd(self.cache_read_usd),
            "cache_write_per_mtok": _usd(self.cache_write_usd),
        }


SEED_MODELS: tuple[SeedModel, ...] = (
    # Opus class
    SeedModel("claude-opus-4-6", "Claude Opus 4.6", "anthropic", "large", 200_000, 64_000,
              "5", "25", "0.50", "6.25", fallbacks=("claude-opus-4-5", "claude-sonnet-4-6")),
    SeedModel("claude-opus-4-5", "Claude Opus 4.5", "anthropic", "large", 200_000, 64_000,
              "5", "25", "0.50", "6.25", fallbacks=("claude-sonnet-4-6",)),
    SeedModel("claude-opus-4-1", "Claude Opus 4.1", "anthropic", "large", 200_000, 32_000,
              "15", "75", "1.50", "18.75", fallbacks=("claude-opus-4-5",)),
    # Sonnet class
    SeedModel("claude-sonnet-4-6", "Claude Sonnet 4.6", "anthropic", "medium", 200_000, 64_000,
              "3", "15", "0.30", "3.75", fallbacks=("claude-haiku-4-5",)),
    # End of life as the anthropic SDK's table of deprecated models gives it.
    SeedModel("claude-sonnet-4-5", "Claude Sonnet 4.5", "anthropic", "medium", 200_000, 64_000,
              "3", "15", "0.30", "3.75", fallbacks=("claude-haiku-4-5",), retired_on=date(2026, 11, 30)),
    # Haiku class
    SeedModel("claude-haiku-4-5", "Claude Haiku 4.5", "anthropic", "small", 200_000, 64_000,
              "1", "5", "0.10", "1.25"),
    # The deterministic offline provider, priced like its Anthropic counterparts so the demo's
    # ledger shows realistic money.
    SeedModel("offline-large", "Offline (Opus-class prices)", "offline", "large", 200_000, 64_000,
              "5", "25", "0.50", "6.25", fallbacks=("offline-medium",), source="priced like claude-opus-4-5"),
    SeedModel("offline-medium", "Offline (Sonnet-class prices)", "offline", "medium", 200_000, 64_000,
              "3", "15", "0.30", "3.75", fallbacks=("offline-small",), source="priced like claude-sonnet-4-6"),
    SeedModel("offline-small", "Offline (Haiku-class prices)", "offline", "small", 200_000, 64_000,
              "1", "5", "0.10", "1.25", source="priced like claude-haiku-4-5"),
)  # fmt: skip

SEED_GLOBAL_DEFAULT = "claude-sonnet-4-6"


def seed_catalog(catalog_model: Any, model_price: Any, model_fallback: Any, global_routing: Any) -> dict[str, int]:
    """Idempotent seed. Takes the model classes so a data migration can pass historical ones."""
    created = {"models": 0, "prices": 0, "fallbacks": 0, "default": 0}
    for seed in SEED_MODELS:
        obj, was_created = catalog_model.objects.get_or_create(
            model_id=seed.model_id,
            defaults={
                "display_name": seed.display_name,
                "provider": seed.provider,
                "tier": seed.tier,
                "context_window": seed.context_window,
                "max_output_tokens": seed.max_output_tokens,
                "is_active": seed.retired_on is None,
            },
        )
        created["models"] += int(was_created)
        if not model_price.objects.filter(model=obj).exists():
            model_price.objects.create(
                model=obj, version=1, effective_from=SEED_EFFECTIVE_FROM, source=seed.source, **seed.price_fields()
            )
            created["prices"] += 1
    for seed in SEED_MODELS:
        if not seed.fallbacks or model_fallback.objects.filter(model_id=seed.model_id).exists():
            continue
        for position, target in enumerate(seed.fallbacks, start=1):
            model_fallback.objects.create(model_id=seed.model_id, fallback_id=target, position=position)
            created["fallbacks"] += 1
    routing, _ = global_routing.objects.get_or_create(id=1)
    if routing.default_model_id is None:
        routing.default_model_id = SEED_GLOBAL_DEFAULT
        routing.save(update_fields=["default_model"])
        created["default"] = 1
    return created


def retire_models(catalog_model: Any, model_fallback: Any) -> list[str]:
    """Deactivate the seeded models whose end of life has come, and take them out of every
    fallback list (a list they leave empty gets the seed's replacement, the retired model's
    seeded place in that list taken by a current model). Returns the ids retired."""
    today = datetime.now(UTC).date()
    retired = [seed.model_id for seed in SEED_MODELS if seed.retired_on is not None and seed.retired_on <= today]
    seeds = {seed.model_id: seed for seed in SEED_MODELS}
    for model_id in retired:
        catalog_model.objects.filter(model_id=model_id).update(is_active=False)
        for row in model_fallback.objects.filter(fallback_id=model_id):
            others = model_fallback.objects.filter(model_id=row.model_id).exclude(fallback_id__in=retired)
            replacement = next(
                (target for target in getattr(seeds.get(row.model_id), "fallbacks", ()) if target not in retired),
                None,
            )
            if not others.exists() and replacement is not None and replacement != row.model_id:
                row.fallback_id = replacement
                row.save(update_fields=["fallback"])
            else:
                row.delete()
    return retired
