"""Memory in the workspace admin site: documents, chunks and facts are curated through the
services (retire, correct), never edited in place, so the graph and the journal stay in step."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import EstimatedCountPaginator
from apps.core.admin_sites import workspace_admin_site
from apps.core.errors import QuarterdeckError

from . import services
from .models import Chunk, Document, EntityType, Fact, MemorySettings, RelationshipType


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Document, site=workspace_admin_site)
class DocumentAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["title", "source_type", "chunk_count", "is_active", "crew_id", "created_at", "created_by"]
    list_filter = ["source_type", "is_active", "created_at"]
    search_fields = ["title", "source", "=id", "=content_sha256"]
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["retire"]

    @admin.action(description="Retire (stop finding them; kept)")
    def retire(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        done = 0
        for document in queryset.filter(is_active=True):
            try:
                services.document_retire(document=document, reason=f"retired in admin by {request.user}")
                done += 1
            except QuarterdeckError as exc:
                self.message_user(request, f"{document}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Retired {done} documents.")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The action needs change permission; the form itself has only read-only fields.
        return bool(getattr(request.user, "is_superuser", False))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Document._meta.fields]


@admin.register(Chunk, site=workspace_admin_site)
class ChunkAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "document", "ordinal", "short_text", "embedder", "is_active"]
    list_filter = ["is_active", "embedder"]
    search_fields = ["=document__id", "text"]
    list_select_related = ["document"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    exclude = ["embedding"]

    @admin.display(description="text")
    def short_text(self, chunk: Chunk) -> str:
        return chunk.text[:100]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chunk]:
        return super().get_queryset(request).defer("embedding", "search_vector")


@admin.register(Fact, site=workspace_admin_site)
class FactAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["text", "relationship", "subject_key", "object_key", "status", "valid_from", "valid_to"]
    list_filter = ["status", "relationship", "valid_from"]
    search_fields = ["text", "subject_key", "object_key", "=id"]
    list_select_related = ["document"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["retire"]

    @admin.action(description="Retire (close the relationship too; kept)")
    def retire(self, request: HttpRequest, queryset: QuerySet[Fact]) -> None:
        done = 0
        for fact in queryset.filter(status="active"):
            try:
                services.fact_retire(fact=fact, reason=f"retired in admin by {request.user}")
                done += 1
            except QuarterdeckError as exc:
                self.message_user(request, f"{fact}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Retired {done} facts.")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Fact._meta.fields]


@admin.register(EntityType, site=workspace_admin_site)
class EntityTypeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its label and vertices stay in the graph

    def save_model(self, request: HttpRequest, obj: EntityType, form: Any, change: bool) -> None:
        services.entity_type_add(name=obj.name, description=obj.description)


@admin.register(RelationshipType, site=workspace_admin_site)
class RelationshipTypeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "cardinality", "description", "created_at"]
    search_fields = ["name"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RelationshipType, form: Any, change: bool) -> None:
        services.relationship_type_add(name=obj.name, cardinality=obj.cardinality, description=obj.description)


@admin.register(MemorySettings, site=workspace_admin_site)
class MemorySettingsAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Switching embedders re-embeds every chunk: ``manage.py memory_reembed``, not a form."""

    list_display = ["embedder", "updated_at"]
