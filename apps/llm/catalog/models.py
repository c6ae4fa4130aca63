"""The model catalog (public schema): which models exist, at what price, and what falls back
to what. Prices are versioned rows, never edited in place, so every ledger entry can name the
exact price it was charged at."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from apps.core.money import format_usd


class Tier(models.TextChoices):
    """Capability/price class. Downgrade rules move calls to a lower rank."""

    LARGE = "large", "Large (Opus class)"
    MEDIUM = "medium", "Medium (Sonnet class)"
    SMALL = "small", "Small (Haiku class)"

    @classmethod
    def rank(cls, value: str) -> int:
        return {cls.SMALL: 1, cls.MEDIUM: 2, cls.LARGE: 3}.get(value, 0)  # type: ignore[call-overload]


model_id_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._:/-]{1,99}$", "Lowercase letters, digits and . _ : / - (2-100 characters)."
)


class CatalogModelQuerySet(models.QuerySet["CatalogModel"]):
    def active(self) -> CatalogModelQuerySet:
        return self.filter(is_active=True)


class CatalogModel(models.Model):
    """One model a workspace may route to. ``model_id`` is what agents, crews and rules name."""

    model_id = models.CharField(max_length=100, primary_key=True, validators=[model_id_validator])
    display_name = models.CharField(max_length=100)
    provider = models.CharField(
        max_length=40, help_text="Provider registry name: anthropic, openai_compat, offline (or a plugged-in one)."
    )
    provider_model = models.CharField(
        max_length=200, blank=True, help_text="The name sent to the provider, when it differs from the model id."
    )
    endpoint = models.URLField(
        blank=True, help_text="Base URL for this model (e.g. a vLLM or Ollama host); empty: the provider's setting."
    )
    tier = models.CharField(max_length=10, choices=Tier.choices)
    context_window = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_output_tokens = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CatalogModelQuerySet.as_manager()

    class Meta:
        ordering = ["provider", "tier", "model_id"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return self.model_id

    @property
    def wire_name(self) -> str:
        return self.provider_model or self.model_id

    @property
    def tier_rank(self) -> int:
        return Tier.rank(self.tier)


class ModelPrice(models.Model):
    """A price version: integer micro-USD per million tokens. Newest effective row wins."""

    model = models.ForeignKey(CatalogModel, on_delete=models.PROTECT, related_name="prices")
    version = models.PositiveIntegerField(editable=False)
    input_per_mtok = models.BigIntegerField(validators=[MinValueValidator(0)], help_text="micro-USD per MTok")
    output_per_mtok = models.BigIntegerField(validators=[MinValueValidator(0)], help_text="micro-USD per MTok")
    cache_read_per_mtok = models.BigIntegerField(validators=[MinValueValidator(0)], help_text="micro-USD per MTok")
    cache_write_per_mtok = models.BigIntegerField(validators=[MinValueValidator(0)], help_text="micro-USD per MTok")
    effective_from = models.DateTimeField()
    source = models.CharField(max_length=200, blank=True, help_text="Where the price comes from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="modelprice_unique_version"),
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0)
                & Q(output_per_mtok__gte=0)
                & Q(cache_read_per_mtok__gte=0)
                & Q(cache_write_per_mtok__gte=0),
                name="modelprice_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["model", "effective_from"], name="modelprice_model_eff")]

    def __str__(self) -> str:
        return (
            f"{self.model_id} v{self.version}: in {format_usd(self.input_per_mtok)} / "
            f"out {format_usd(self.output_per_mtok)} per MTok"
        )


class ModelFallback(models.Model):
    """An ordered fallback list per model, tried on provider errors and overload."""

    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="fallbacks")
    fallback = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["model", "position"]
        constraints = [
            models.UniqueConstraint(fields=["model", "position"], name="modelfallback_unique_position"),
            models.UniqueConstraint(fields=["model", "fallback"], name="modelfallback_unique_pair"),
            models.CheckConstraint(condition=~Q(model=models.F("fallback")), name="modelfallback_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} -> {self.fallback_id} (#{self.position})"


class GlobalRouting(models.Model):
    """Singleton: the platform-wide default model, set by super-admins."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    default_model = models.ForeignKey(CatalogModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "global routing"
        verbose_name_plural = "global routing"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="globalrouting_singleton")]

    def __str__(self) -> str:
        return f"global default: {self.default_model_id or '(none)'}"

    def clean(self) -> None:
        if self.default_model is not None and not self.default_model.is_active:
            raise ValidationError({"default_model": "The default model must be active."})
