"""Models of the memory app (one set of tables per workspace schema).

Semantic memory is documents cut into chunks, each with an embedding (pgvector) and a
full-text vector. Graph memory lives in the workspace's AGE graph (``apps.memory.graph``);
a ``Fact`` ties the two together: the sentence an agent or a person stated (a one-chunk
document) and the relationship it asserts in the graph.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast
from pgvector.django import HnswIndex, VectorField

# The dimension of the default (local) embedder. The embedding column itself has no fixed
# dimension, so a workspace can switch to an embedder of another size; each dimension gets a
# partial HNSW index over ``embedding::vector(N)`` (see ``services.vector_index_ensure``).
DEFAULT_DIMENSIONS = 384
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


class MemorySettings(models.Model):
    """The workspace's embedder. One row (id=1) per workspace schema."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    embedder = models.CharField(max_length=64, help_text="Name in the embedder registry.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "memory settings"
        verbose_name_plural = "memory settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="memory_settings_singleton")]

    def __str__(self) -> str:
        return f"embedder {self.embedder}"


class EntityType(models.Model):
    """An entity label a workspace adds to the built-in ones (Person, Company, ...)."""

    name = models.CharField(max_length=63, unique=True)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Cardinality(models.TextChoices):
    MANY = "many", "Many"
    ONE_PER_SOURCE = "one_per_source", "One current per source (a new one closes the old)"
    ONE_PER_PAIR = "one_per_pair", "One current per source and target"


class RelationshipType(models.Model):
    """A relationship type a workspace adds to the built-in ones (WORKS_AT, ROLE, ...)."""

    name = models.CharField(max_length=63, unique=True)
    cardinality = models.CharField(max_length=16, choices=Cardinality.choices, default=Cardinality.MANY)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(cardinality__in=Cardinality.values), name="memory_reltype_cardinality")
        ]

    def __str__(self) -> str:
        return self.name


class SourceType(models.TextChoices):
    TEXT = "text", "Plain text"
    MARKDOWN = "markdown", "Markdown"
    PDF = "pdf", "PDF"
    FACT = "fact", "Fact"


class DocumentQuerySet(models.QuerySet["Document"]):
    def active(self) -> DocumentQuerySet:
        return self.filter(is_active=True)


class Document(models.Model):
    """Something remembered: an ingested file or text, or the sentence of a fact."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=500, blank=True, help_text="Where it came from: file name, URL, agent...")
    source_type = models.CharField(max_length=16, choices=SourceType.choices)
    content_sha256 = models.CharField(max_length=64, editable=False)
    metadata = models.JSONField(default=dict, blank=True)
    crew_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    mission_id = models.UUIDField(null=True, blank=True)
    char_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    embedder = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="memory_doc_created"),
            models.Index(fields=["content_sha256"], name="memory_doc_sha"),
            models.Index(fields=["crew_id"], name="memory_doc_crew"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(source_type__in=SourceType.values), name="memory_doc_source_type")
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A piece of a document with its embedding. Scope and metadata are copied from the
    document so that a filtered search reads one table."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    embedding = VectorField()
    embedder = models.CharField(max_length=120)
    dimensions = models.PositiveSmallIntegerField()
    metadata = models.JSONField(default=dict, blank=True)
    crew_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="memory_chunk_doc_ordinal")]
        indexes = [
            HnswIndex(
                OpClass(Cast("embedding", VectorField(dimensions=DEFAULT_DIMENSIONS)), name="vector_cosine_ops"),
                name=f"memory_chunk_hnsw_{DEFAULT_DIMENSIONS}",
                condition=Q(dimensions=DEFAULT_DIMENSIONS),
                m=HNSW_M,
                ef_construction=HNSW_EF_CONSTRUCTION,
            ),
            GinIndex(fields=["search_vector"], name="memory_chunk_fts"),
            GinIndex(OpClass("metadata", name="jsonb_path_ops"), name="memory_chunk_metadata"),
            models.Index(fields=["crew_id"], name="memory_chunk_crew"),
            models.Index(fields=["agent_id"], name="memory_chunk_agent"),
            models.Index(fields=["embedder"], name="memory_chunk_embedder"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class FactStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUPERSEDED = "superseded", "Superseded (a newer fact replaced it)"
    CORRECTED = "corrected", "Corrected"
    RETIRED = "retired", "Retired"


class FactQuerySet(models.QuerySet["Fact"]):
    def active(self) -> FactQuerySet:
        return self.filter(status=FactStatus.ACTIVE)

    def about(self, *, label: str, key: str) -> FactQuerySet:
        return self.filter(Q(subject_label=label, subject_key=key) | Q(object_label=label, object_key=key))


class Fact(models.Model):
    """A statement with both halves of memory: its sentence (a one-chunk document) and,
    when it names one, the relationship it asserts in the graph (an edge whose ``uid`` is
    ``relationship_uid``). Closing a fact closes both; nothing is deleted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    text = models.TextField()
    document = models.OneToOneField(Document, on_delete=models.PROTECT, related_name="fact")
    subject_label = models.CharField(max_length=63, blank=True)
    subject_key = models.CharField(max_length=300, blank=True)
    relationship = models.CharField(max_length=63, blank=True)
    object_label = models.CharField(max_length=63, blank=True)
    object_key = models.CharField(max_length=300, blank=True)
    properties = models.JSONField(default=dict, blank=True, help_text="Properties of the relationship.")
    relationship_uid = models.UUIDField(null=True, blank=True, editable=False)
    crew_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    mission_id = models.UUIDField(null=True, blank=True)
    source = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=FactStatus.choices, default=FactStatus.ACTIVE)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was corrected or retired.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)

    objects = FactQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["subject_label", "subject_key"], name="memory_fact_subject"),
            models.Index(fields=["object_label", "object_key"], name="memory_fact_object"),
            models.Index(fields=["relationship_uid"], name="memory_fact_rel_uid"),
            models.Index(fields=["status", "-created_at"], name="memory_fact_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=FactStatus.values), name="memory_fact_status_valid"),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="memory_fact_validity_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:80]

    @property
    def is_current(self) -> bool:
        return self.status == FactStatus.ACTIVE and self.valid_to is None
