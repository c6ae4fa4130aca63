"""Super-admin tools for the catalog (public admin site): models, price versions, fallbacks,
and the global default model."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from apps.core.money import format_usd

from . import services
from .models import CatalogModel, GlobalRouting, ModelFallback, ModelPrice
from .selectors import catalog_invalidate


def _per_mtok(value: int) -> str:
    return f"{format_usd(value, 4)}/MTok"


class ModelPriceInline(admin.TabularInline):  # type: ignore[type-arg]
    """Price versions are history: shown, never edited (add a new version instead)."""

    model = ModelPrice
    extra = 0
    can_delete = False
    fields = ("version", "effective_from", "input", "output", "cache_read", "cache_write", "source")
    readonly_fields = fields
    ordering = ["-effective_from", "-version"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="input")
    def input(self, obj: ModelPrice) -> str:
        return _per_mtok(obj.input_per_mtok)

    @admin.display(description="output")
    def output(self, obj: ModelPrice) -> str:
        return _per_mtok(obj.output_per_mtok)

    @admin.display(description="cache read")
    def cache_read(self, obj: ModelPrice) -> str:
        return _per_mtok(obj.cache_read_per_mtok)

    @admin.display(description="cache write")
    def cache_write(self, obj: ModelPrice) -> str:
        return _per_mtok(obj.cache_write_per_mtok)


class ModelFallbackInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ModelFallback
    fk_name = "model"
    extra = 0
    fields = ["position", "fallback"]
    ordering = ["position"]


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["model_id", "display_name", "provider", "tier", "context_window", "current_price", "is_active"]
    list_filter = ["provider", "tier", "is_active"]
    search_fields = ["model_id", "display_name", "provider_model"]
    inlines = [ModelFallbackInline, ModelPriceInline]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("prices")

    @admin.display(description="current price (in / out)")
    def current_price(self, obj: CatalogModel) -> str:
        from django.utils import timezone

        now = timezone.now()
        current = max(
            (p for p in obj.prices.all() if p.effective_from <= now),
            key=lambda p: (p.effective_from, p.version),
            default=None,
        )
        if current is None:
            return "no price (not routable)"
        return f"{_per_mtok(current.input_per_mtok)} / {_per_mtok(current.output_per_mtok)} (v{current.version})"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "model_id"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        catalog_invalidate()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        catalog_invalidate()


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Adding a price creates the next version; existing versions are read-only."""

    list_display = ["model", "version", "effective_from", "input_per_mtok", "output_per_mtok", "source"]
    list_filter = ["model__provider", "model"]
    list_select_related = ["model"]
    search_fields = ["model__model_id"]
    fields = [
        "model",
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "effective_from",
        "source",
    ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        price = services.model_price_add(
            model=obj.model,
            input_per_mtok=obj.input_per_mtok,
            output_per_mtok=obj.output_per_mtok,
            cache_read_per_mtok=obj.cache_read_per_mtok,
            cache_write_per_mtok=obj.cache_write_per_mtok,
            effective_from=obj.effective_from,
            source=obj.source,
        )
        obj.pk = price.pk
        obj.version = price.version
        self.message_user(request, f"Added price version {price.version} for {obj.model}.", messages.SUCCESS)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        # The version is assigned by the service; the form must not require it.
        form.base_fields.pop("version", None)
        return form


@admin.register(GlobalRouting)
class GlobalRoutingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["__str__", "default_model", "updated_at"]
    fields = ["default_model", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not GlobalRouting.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: GlobalRouting, form: Any, change: bool) -> None:
        services.global_default_set(model_id=obj.default_model_id)
