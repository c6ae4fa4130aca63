"""REST endpoints for memory: ingest, search, facts, entities, relationships, context.

Thin: validate, call one service or selector, serialize. The workspace (and so the schema and
the graph) comes from the API key or the X-Workspace header, via the Workspace* bases.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.pagination import KeysetPagination
from apps.tenants.drf import WorkspaceAPIView, WorkspaceGenericAPIView

from . import selectors, services
from .context import context_for_subject
from .models import EntityType, RelationshipType
from .serializers import (
    ContextQuerySerializer,
    DocumentDetailSerializer,
    DocumentSerializer,
    EntityQuerySerializer,
    EntityUpsertSerializer,
    FactCorrectSerializer,
    FactSerializer,
    FactWriteSerializer,
    IngestSerializer,
    ReasonSerializer,
    RelationshipCloseSerializer,
    RelationshipWriteSerializer,
    SearchSerializer,
    TypeCreateSerializer,
)

READ, WRITE, MANAGE = "memory.read", "memory.write", "memory.manage"


class NewestFirst(KeysetPagination):
    ordering = "-created_at"


def _query_data(request: Request, *, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        data[key] = values if key in lists else values[-1]
    return data


class DocumentListApi(WorkspaceGenericAPIView):
    """Documents in semantic memory (GET), or ingest one (POST): text, Markdown or a PDF."""

    read_permission, write_permission = READ, WRITE
    pagination_class = NewestFirst
    serializer_class = DocumentSerializer

    def get_queryset(self) -> Any:
        include_retired = self.request.query_params.get("include_retired") in {"1", "true"}
        return selectors.document_list(
            include_retired=include_retired, source_type=self.request.query_params.get("source_type") or None
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("source_type", str, description="text, markdown, pdf or fact"),
            OpenApiParameter("include_retired", bool),
        ],
        responses=DocumentSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(request=IngestSerializer, responses={201: DocumentSerializer})
    def post(self, request: Request) -> Response:
        serializer = IngestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = services.document_ingest(**serializer.validated_data)
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)


class DocumentDetailApi(WorkspaceAPIView):
    """One document with its chunks (GET); DELETE retires it (kept, no longer found)."""

    read_permission, write_permission = READ, MANAGE

    @extend_schema(responses=DocumentDetailSerializer)
    def get(self, request: Request, document_id: str) -> Response:
        return Response(DocumentDetailSerializer(selectors.document_get(document_id=document_id)).data)

    @extend_schema(request=ReasonSerializer, responses=DocumentSerializer)
    def delete(self, request: Request, document_id: str) -> Response:
        serializer = ReasonSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        document = services.document_retire(
            document=selectors.document_get(document_id=document_id), **serializer.validated_data
        )
        return Response(DocumentSerializer(document).data)


class SearchApi(WorkspaceAPIView):
    """Semantic search: top-k by cosine similarity, ``hybrid`` adds full-text rank. GET with
    query parameters (``filters`` as JSON), or POST the same fields as a JSON body."""

    read_permission = READ
    action_permissions = {"POST": READ}

    def _search(self, data: Any) -> Response:
        serializer = SearchSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        hits = selectors.memory_search(**serializer.validated_data)
        return Response({"results": [hit.as_dict() for hit in hits]})

    @extend_schema(
        parameters=[
            OpenApiParameter("query", str),
            OpenApiParameter("k", int),
            OpenApiParameter("hybrid", bool),
            OpenApiParameter("crew_id", OpenApiTypes.UUID),
            OpenApiParameter("agent_id", OpenApiTypes.UUID),
            OpenApiParameter("filters", str, description="JSON object the metadata must contain"),
            OpenApiParameter("source_types", str, many=True),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        data = _query_data(request, lists=("source_types",))
        if "filters" in data:
            import json

            try:
                data["filters"] = json.loads(data["filters"])
            except ValueError:
                from rest_framework.exceptions import ValidationError

                raise ValidationError({"filters": ["Must be a JSON object."]}) from None
        return self._search(data)

    @extend_schema(request=SearchSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        return self._search(request.data)


class FactListApi(WorkspaceGenericAPIView):
    """Facts (GET; ``status``, ``label`` + ``key`` filter), or remember one (POST): the sentence
    in semantic memory and, with ``relationship``, the relationship in the graph."""

    read_permission, write_permission = READ, WRITE
    pagination_class = NewestFirst
    serializer_class = FactSerializer

    def get_queryset(self) -> Any:
        params = self.request.query_params
        status_filter = params.get("status", "active")
        return selectors.fact_list(
            status=None if status_filter == "all" else status_filter,
            label=params.get("label") or None,
            key=params.get("key") or None,
        )

    @extend_schema(
        parameters=[OpenApiParameter("status", str), OpenApiParameter("label", str), OpenApiParameter("key", str)],
        responses=FactSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(FactSerializer(page, many=True).data)

    @extend_schema(request=FactWriteSerializer, responses={201: FactSerializer})
    def post(self, request: Request) -> Response:
        serializer = FactWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fact = services.memory_write_fact(**serializer.validated_data)
        return Response(FactSerializer(fact).data, status=status.HTTP_201_CREATED)


class FactDetailApi(WorkspaceAPIView):
    read_permission = READ

    @extend_schema(responses=FactSerializer)
    def get(self, request: Request, fact_id: str) -> Response:
        return Response(FactSerializer(selectors.fact_get(fact_id=fact_id)).data)


class FactCorrectApi(WorkspaceAPIView):
    """Correct a fact: the old one is closed (kept, status corrected), the new one returned."""

    read_permission, write_permission = READ, WRITE

    @extend_schema(request=FactCorrectSerializer, responses={201: FactSerializer})
    def post(self, request: Request, fact_id: str) -> Response:
        serializer = FactCorrectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fact = services.fact_correct(fact=selectors.fact_get(fact_id=fact_id), **serializer.validated_data)
        return Response(FactSerializer(fact).data, status=status.HTTP_201_CREATED)


class FactRetireApi(WorkspaceAPIView):
    """Retire a fact: its relationship gets valid_to, its sentence is no longer found."""

    read_permission, write_permission = READ, MANAGE

    @extend_schema(request=ReasonSerializer, responses=FactSerializer)
    def post(self, request: Request, fact_id: str) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fact = services.fact_retire(fact=selectors.fact_get(fact_id=fact_id), **serializer.validated_data)
        return Response(FactSerializer(fact).data)


class EntityListApi(WorkspaceAPIView):
    """Entities in the graph (GET: ``label``, ``q``, or ``label`` + ``key`` for one), or create
    or update one (POST)."""

    read_permission, write_permission = READ, WRITE

    @extend_schema(
        operation_id="memory_entities_list", parameters=[EntityQuerySerializer], responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        serializer = EntityQuerySerializer(data=_query_data(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["label"] and data["key"]:
            entity = selectors.entity_get(label=data["label"], key=data["key"])
            return Response({"results": [entity.as_dict()], "next_offset": None})
        entities = selectors.entity_list(
            label=data["label"] or None, search=data["q"], limit=data["limit"], offset=data["offset"]
        )
        more = len(entities) == data["limit"]
        return Response(
            {
                "results": [e.as_dict() for e in entities],
                "next_offset": data["offset"] + len(entities) if more else None,
            }
        )

    @extend_schema(request=EntityUpsertSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        serializer = EntityUpsertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(services.entity_upsert(**serializer.validated_data).as_dict())


class EntityDetailApi(WorkspaceAPIView):
    """An entity with its relationships, current and closed, and the facts about it."""

    read_permission = READ

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, uid: str) -> Response:
        entity = selectors.entity_get(uid=uid)
        relationships = selectors.entity_relationships(entity=entity, include_closed=True)
        facts = selectors.fact_list(status=None, label=entity.label, key=entity.key)[:50]
        return Response(
            {
                **entity.as_dict(),
                "relationships": [rel.as_dict() for rel in relationships],
                "facts": FactSerializer(facts, many=True).data,
            }
        )


class RelationshipListApi(WorkspaceAPIView):
    """Assert a relationship without a sentence (POST), e.g. from a CRM sync. GET lists the
    relationships of ``entity`` (a uid)."""

    read_permission, write_permission = READ, WRITE

    @extend_schema(
        operation_id="memory_relationships_list",
        parameters=[OpenApiParameter("entity", OpenApiTypes.UUID)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        uid = request.query_params.get("entity")
        if not uid:
            return Response({"results": []})
        entity = selectors.entity_get(uid=uid)
        relationships = selectors.entity_relationships(entity=entity, include_closed=True)
        return Response({"results": [rel.as_dict() for rel in relationships]})

    @extend_schema(request=RelationshipWriteSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        serializer = RelationshipWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        written = services.relationship_write(**serializer.validated_data)
        body = {**written.relationship.as_dict(), "closed": written.closed, "created": written.created}
        return Response(body, status=status.HTTP_201_CREATED if written.created else status.HTTP_200_OK)


class RelationshipCloseApi(WorkspaceAPIView):
    read_permission, write_permission = READ, WRITE

    @extend_schema(request=RelationshipCloseSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, uid: str) -> Response:
        serializer = RelationshipCloseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        closed = services.relationship_close(uid=uid, **serializer.validated_data)
        return Response(closed.as_dict())


class ContextApi(WorkspaceAPIView):
    """What an agent should know about a subject (an email, ``Label:key`` or a name), within a
    token budget."""

    read_permission = READ
    action_permissions = {"POST": READ}

    def _context(self, data: Any) -> Response:
        serializer = ContextQuerySerializer(data=data)
        serializer.is_valid(raise_exception=True)
        return Response(context_for_subject(**serializer.validated_data).as_dict())

    @extend_schema(parameters=[ContextQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return self._context(_query_data(request))

    @extend_schema(request=ContextQuerySerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        return self._context(request.data)


class TypeListApi(WorkspaceAPIView):
    """The workspace's vocabulary: entity types and relationship types (built-in and added)."""

    read_permission, write_permission = READ, MANAGE

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(
            {
                "entity_types": services.entity_labels(),
                "relationship_types": [
                    {"name": name, "cardinality": cardinality}
                    for name, cardinality in sorted(services.relationship_types().items())
                ],
                "embedder": services.memory_settings().embedder,
            }
        )

    @extend_schema(request=TypeCreateSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        serializer = TypeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        row: EntityType | RelationshipType
        if data["kind"] == "entity":
            row = services.entity_type_add(name=data["name"], description=data["description"])
            body = {"kind": "entity", "name": row.name}
        else:
            row = services.relationship_type_add(
                name=data["name"], cardinality=data["cardinality"], description=data["description"]
            )
            body = {"kind": "relationship", "name": row.name, "cardinality": row.cardinality}
        return Response(body, status=status.HTTP_201_CREATED)
