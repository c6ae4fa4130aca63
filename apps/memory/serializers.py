from __future__ import annotations

import base64
import binascii
from typing import Any

from rest_framework import serializers

from apps.core.serializers import StrictSerializer

from .context import MAX_BUDGET, MIN_BUDGET
from .models import Cardinality, Chunk, Document, Fact, SourceType
from .selectors import MAX_K
from .services import INGESTIBLE, MAX_FACT_CHARS

MAX_INGEST_CHARS = 900_000


# --- input ------------------------------------------------------------------------------------


class ScopeFields(StrictSerializer):
    crew_id = serializers.UUIDField(required=False, allow_null=True)
    agent_id = serializers.UUIDField(required=False, allow_null=True)


class IngestSerializer(ScopeFields):
    title = serializers.CharField(max_length=300)
    source_type = serializers.ChoiceField(choices=[c.value for c in INGESTIBLE], default=SourceType.TEXT)
    text = serializers.CharField(required=False, max_length=MAX_INGEST_CHARS, trim_whitespace=False)
    content_base64 = serializers.CharField(required=False, help_text="The file's bytes (PDF), base64-encoded.")
    source = serializers.CharField(required=False, max_length=500, default="", allow_blank=True)  # type: ignore[assignment]
    metadata = serializers.DictField(required=False, default=dict)
    mission_id = serializers.UUIDField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_text, has_content = "text" in attrs, "content_base64" in attrs
        if has_text == has_content:
            raise serializers.ValidationError({"text": ["Give either text or content_base64."]})
        if attrs["source_type"] == SourceType.PDF and not has_content:
            raise serializers.ValidationError({"content_base64": ["A PDF is sent as content_base64."]})
        if has_content:
            try:
                attrs["content"] = base64.b64decode(attrs.pop("content_base64"), validate=True)
            except (binascii.Error, ValueError):
                raise serializers.ValidationError({"content_base64": ["Not valid base64."]}) from None
        return attrs


class SearchSerializer(ScopeFields):
    query = serializers.CharField(max_length=2000, allow_blank=True, default="")
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    hybrid = serializers.BooleanField(default=False)
    filters = serializers.DictField(required=False, default=dict)
    source_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SourceType.values), required=False, default=list
    )


class EntityRefSerializer(StrictSerializer):
    label = serializers.CharField(max_length=63)  # type: ignore[assignment]
    key = serializers.CharField(max_length=300)
    name = serializers.CharField(max_length=300, required=False)
    properties = serializers.DictField(required=False, default=dict)


class FactWriteSerializer(ScopeFields):
    text = serializers.CharField(max_length=MAX_FACT_CHARS)
    subject = EntityRefSerializer(required=False)
    relationship = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")
    object = EntityRefSerializer(required=False)
    properties = serializers.DictField(required=False, default=dict)
    valid_from = serializers.DateTimeField(required=False)
    mission_id = serializers.UUIDField(required=False, allow_null=True)
    source = serializers.CharField(required=False, max_length=500, default="", allow_blank=True)  # type: ignore[assignment]
    metadata = serializers.DictField(required=False, default=dict)


class FactCorrectSerializer(StrictSerializer):
    text = serializers.CharField(max_length=MAX_FACT_CHARS)
    object = EntityRefSerializer(required=False)
    properties = serializers.DictField(required=False)
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class ReasonSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class EntityUpsertSerializer(EntityRefSerializer):
    pass


class RelationshipWriteSerializer(StrictSerializer):
    subject = EntityRefSerializer()
    relationship = serializers.CharField(max_length=63)
    object = EntityRefSerializer()
    properties = serializers.DictField(required=False, default=dict)
    valid_from = serializers.DateTimeField(required=False)


class RelationshipCloseSerializer(ReasonSerializer):
    at = serializers.DateTimeField(required=False)


class TypeCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=["entity", "relationship"])
    name = serializers.CharField(max_length=63)
    cardinality = serializers.ChoiceField(choices=Cardinality.values, default=Cardinality.MANY)
    description = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)


class ContextQuerySerializer(ScopeFields):
    subject = serializers.CharField(max_length=300)
    token_budget = serializers.IntegerField(min_value=MIN_BUDGET, max_value=MAX_BUDGET, default=400)
    query = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class EntityQuerySerializer(StrictSerializer):
    label = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")  # type: ignore[assignment]
    key = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    q = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(min_value=0, default=0)


# --- output -----------------------------------------------------------------------------------


class DocumentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "source",
            "source_type",
            "content_sha256",
            "metadata",
            "crew_id",
            "agent_id",
            "mission_id",
            "char_count",
            "chunk_count",
            "embedder",
            "is_active",
            "retired_at",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields


class ChunkSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Chunk
        fields = ["id", "ordinal", "text", "metadata", "embedder", "is_active"]
        read_only_fields = fields


class DocumentDetailSerializer(DocumentSerializer):
    chunks = serializers.SerializerMethodField()

    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "chunks"]
        read_only_fields = fields

    def get_chunks(self, document: Document) -> list[dict[str, Any]]:
        from .selectors import chunk_list

        return ChunkSerializer(chunk_list(document=document), many=True).data  # type: ignore[return-value]


class FactSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    subject = serializers.SerializerMethodField()
    object = serializers.SerializerMethodField()

    class Meta:
        model = Fact
        fields = [
            "id",
            "text",
            "subject",
            "relationship",
            "object",
            "properties",
            "relationship_uid",
            "status",
            "valid_from",
            "valid_to",
            "superseded_by",
            "reason",
            "document",
            "crew_id",
            "agent_id",
            "mission_id",
            "source",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields

    def get_subject(self, fact: Fact) -> dict[str, str] | None:
        return {"label": fact.subject_label, "key": fact.subject_key} if fact.subject_label else None

    def get_object(self, fact: Fact) -> dict[str, str] | None:
        return {"label": fact.object_label, "key": fact.object_key} if fact.object_label else None
