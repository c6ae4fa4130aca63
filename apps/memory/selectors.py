"""Reads from memory: semantic search (vector, or hybrid with full-text rank), documents,
facts and the graph. Everything reads the active workspace's schema and graph only."""

from __future__ import annotations

import json
import re
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name

from apps.core.errors import NotFound, ValidationFailed

from . import graph as g
from .models import Chunk, Document, Fact, FactStatus
from .services import _metadata, _uuid, _vector_literal, current_embedder

MAX_K = 100
# Hybrid score = cosine similarity + this weight x ts_rank_cd normalised to [0, 1).
HYBRID_TEXT_WEIGHT = 1.0
TS_CONFIG = "english"


# hnsw.ef_search: how wide the graph search is (recall against speed). iterative_scan
# (pgvector >= 0.8): with a filter, keep walking the graph until k rows pass it.
_HNSW_SETTINGS = "SELECT set_config('hnsw.ef_search', %s, %s), set_config('hnsw.iterative_scan', 'relaxed_order', %s)"
# Connections whose session already carries the settings (set in autocommit, so no rollback
# can undo them), with the ef_search they carry.
_hnsw_sessions: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _active_schema() -> str:
    schema = str(getattr(connection, "schema_name", "") or "")
    if not _SCHEMA_RE.match(schema) or schema == get_public_schema_name():
        raise NotFound("No workspace is active.", code="no_workspace")
    return schema


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: uuid.UUID
    title: str
    text: str
    score: float
    similarity: float
    text_rank: float | None
    source: str
    source_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    crew_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None

    @property
    def fact_id(self) -> str | None:
        value = self.metadata.get("fact_id")
        return str(value) if value else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "document_id": str(self.document_id),
            "fact_id": self.fact_id,
            "title": self.title,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 6),
            "text_rank": None if self.text_rank is None else round(self.text_rank, 6),
            "source": self.source,
            "source_type": self.source_type,
            "metadata": self.metadata,
            "crew_id": str(self.crew_id) if self.crew_id else None,
            "agent_id": str(self.agent_id) if self.agent_id else None,
        }


@dataclass
class _Where:
    sql: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.sql.append(clause)
        self.params.extend(params)

    def render(self) -> str:
        return " AND ".join(self.sql) if self.sql else "TRUE"


def _scope(
    *,
    embedder_identity: str,
    dimensions: int,
    crew_id: uuid.UUID | None,
    agent_id: uuid.UUID | None,
    filters: Mapping[str, Any] | None,
    source_types: Sequence[str] | None,
    include_inactive: bool,
) -> _Where:
    where = _Where()
    where.add(f"c.dimensions = {int(dimensions)}")
    where.add("c.embedder = %s", embedder_identity)
    if not include_inactive:
        where.add("c.is_active")
    # An agent sees workspace-wide memory, its crew's and its own; never another crew's.
    if crew_id is not None:
        where.add("(c.crew_id IS NULL OR c.crew_id = %s)", crew_id)
    if agent_id is not None:
        where.add("(c.agent_id IS NULL OR c.agent_id = %s)", agent_id)
    if filters:
        where.add("c.metadata @> %s::jsonb", json.dumps(dict(filters)))
    if source_types:
        where.add("c.metadata ->> 'source_type' = ANY(%s)", list(source_types))
    return where


def chunk_search(
    *,
    vector: Sequence[float],
    embedder_identity: str,
    dimensions: int,
    k: int = 10,
    crew_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    filters: Mapping[str, Any] | None = None,
    source_types: Sequence[str] | None = None,
    text: str | None = None,
    exact: bool = False,
    ef_search: int | None = None,
    include_inactive: bool = False,
    ids_only: bool = False,
) -> list[SearchHit] | list[int]:
    """Top-k chunks by cosine similarity to ``vector``; with ``text``, hybrid: candidates from
    the HNSW index and from the full-text index, ranked by similarity + text rank.

    ``exact`` turns index scans off (the bench compares HNSW against it for recall).
    """
    k = max(1, min(int(k), MAX_K))
    dims = int(dimensions)
    where = _scope(
        embedder_identity=embedder_identity,
        dimensions=dims,
        crew_id=crew_id,
        agent_id=agent_id,
        filters=filters,
        source_types=source_types,
        include_inactive=include_inactive,
    )
    q = _vector_literal(vector)
    # The expression must be the indexed one, `embedding::vector(N)`, for HNSW to serve it.
    # Only ints, fixed SQL and the scope's fixed clauses are formatted in; values are bound.
    distance = f"((c.embedding)::vector({dims}) <=> %s::vector({dims}))"
    candidates = k if text is None else max(k * 4, 40)
    ctes = [
        f"vec AS MATERIALIZED (SELECT c.id FROM {{chunks}} c WHERE {where.render()} "  # noqa: S608
        f"ORDER BY {distance} LIMIT {candidates})"
    ]
    params: list[Any] = [*where.params, q]
    union = "SELECT id FROM vec"
    rank_sql = "NULL::float8"
    rank_params: list[Any] = []
    if text:
        # Any of the query's words (OR), not all of them: the text rank should lift a chunk that
        # has the rare word ("QX4471") even when it lacks the others.
        tsquery = (
            "(SELECT coalesce(string_agg(quote_literal(lexeme), ' | '), '')::tsquery "  # noqa: S608  (constants)
            f"FROM unnest(to_tsvector('{TS_CONFIG}', %s)))"
        )
        ctes.append(
            f"fts AS MATERIALIZED (SELECT c.id FROM {{chunks}} c WHERE c.search_vector @@ {tsquery} "  # noqa: S608
            f"AND {where.render()} ORDER BY ts_rank_cd(c.search_vector, {tsquery}, 32) DESC LIMIT {candidates})"
        )
        params += [text, *where.params, text]
        union += " UNION SELECT id FROM fts"
        rank_sql = f"ts_rank_cd(c.search_vector, {tsquery}, 32)"
        rank_params = [text]
    statement = (
        "WITH "
        + ", ".join(ctes)
        + ", ids AS ("
        + union
        + ") "
        + "SELECT c.id, c.document_id, c.text, c.metadata, c.crew_id, c.agent_id, d.title, d.source, d.source_type, "  # noqa: S608
        f"1 - {distance} AS similarity, {rank_sql} AS text_rank "
        "FROM ids JOIN {chunks} c ON c.id = ids.id JOIN {documents} d ON d.id = c.document_id "
        f"ORDER BY (1 - {distance}) + {HYBRID_TEXT_WEIGHT} * COALESCE({rank_sql}, 0) DESC, c.id LIMIT {k}"
    )
    params += [q, *rank_params, q, *rank_params]
    ef = int(ef_search or settings.MEMORY_HNSW_EF_SEARCH)
    # Table names are qualified with the active workspace's schema, and the statement runs on
    # the driver's cursor: django-tenants would otherwise send `SET search_path` before every
    # query, doubling the round trips of the hottest read in memory.
    schema = _active_schema()
    statement = statement.replace("{chunks}", f'"{schema}".memory_chunk').replace(
        "{documents}", f'"{schema}".memory_document'
    )
    connection.ensure_connection()
    raw = connection.connection
    if connection.in_atomic_block or exact or ef != settings.MEMORY_HNSW_EF_SEARCH:
        with transaction.atomic(savepoint=False), psycopg.ClientCursor(raw) as cursor:
            cursor.execute(_HNSW_SETTINGS, [str(ef), True, True])
            if exact:
                cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(statement, params)
            rows = cursor.fetchall()
    else:
        # Outside a transaction the settings can live on the session: one round trip per
        # search instead of four (BEGIN, SET, query, COMMIT).
        with psycopg.ClientCursor(raw) as cursor:
            if _hnsw_sessions.get(raw) != ef:
                cursor.execute(_HNSW_SETTINGS, [str(ef), False, False])
                _hnsw_sessions[raw] = ef
            cursor.execute(statement, params)
            rows = cursor.fetchall()
    if ids_only:
        return [int(row[0]) for row in rows]
    return [
        SearchHit(
            chunk_id=int(row[0]),
            document_id=row[1],
            text=row[2],
            metadata=row[3] if isinstance(row[3], dict) else json.loads(row[3] or "{}"),
            crew_id=row[4],
            agent_id=row[5],
            title=row[6],
            source=row[7],
            source_type=row[8],
            similarity=float(row[9]),
            text_rank=None if row[10] is None else float(row[10]),
            score=float(row[9]) + HYBRID_TEXT_WEIGHT * float(row[10] or 0.0),
        )
        for row in rows
    ]


def memory_search(
    *,
    query: str,
    k: int = 10,
    crew_id: uuid.UUID | str | None = None,
    agent_id: uuid.UUID | str | None = None,
    filters: Mapping[str, Any] | None = None,
    hybrid: bool = False,
    source_types: Sequence[str] | None = None,
) -> list[SearchHit]:
    """The most relevant current memories for ``query``.

    ``crew_id``/``agent_id`` are the caller's own: results are workspace-wide memories plus
    that crew's and that agent's, never another crew's (None: no restriction, for people).
    ``filters`` is a metadata containment filter (``{"customer": "acme"}``).
    """
    query = (query or "").strip()
    if not query:
        return []
    if len(query) > 2000:
        raise ValidationFailed(details={"query": ["At most 2000 characters."]})
    embedder = current_embedder()
    hits = chunk_search(
        vector=embedder.embed_query(query),
        embedder_identity=embedder.identity,
        dimensions=embedder.dimensions,
        k=k,
        crew_id=_uuid(crew_id, "crew_id"),
        agent_id=_uuid(agent_id, "agent_id"),
        filters=_metadata(filters),
        source_types=source_types,
        text=query if hybrid else None,
    )
    return hits  # type: ignore[return-value]


# --- documents and facts -------------------------------------------------------------------------


def document_list(*, include_retired: bool = False, source_type: str | None = None) -> QuerySet[Document]:
    queryset = Document.objects.all() if include_retired else Document.objects.active()
    if source_type:
        queryset = queryset.filter(source_type=source_type)
    return queryset.order_by("-created_at")


def document_get(*, document_id: uuid.UUID | str) -> Document:
    pk = _uuid(document_id, "document_id")
    document = Document.objects.filter(pk=pk).first() if pk else None
    if document is None:
        raise NotFound("No such document.")
    return document


def chunk_list(*, document: Document) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document=document).defer("embedding", "search_vector").order_by("ordinal")


def fact_list(
    *, status: str | None = FactStatus.ACTIVE, label: str | None = None, key: str | None = None
) -> QuerySet[Fact]:
    queryset = Fact.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    if label and key:
        queryset = queryset.about(label=label, key=key)
    return queryset.order_by("-created_at")


def fact_get(*, fact_id: uuid.UUID | str) -> Fact:
    pk = _uuid(fact_id, "fact_id")
    fact = Fact.objects.select_related("document").filter(pk=pk).first() if pk else None
    if fact is None:
        raise NotFound("No such fact.")
    return fact


# --- graph ------------------------------------------------------------------------------------------


def entity_get(*, uid: str | None = None, label: str | None = None, key: str | None = None) -> g.Entity:
    graph = g.Graph.current()
    entity: g.Entity | None
    if uid:
        entity = g.entity_by_uid(graph, uid=str(_uuid(uid, "uid")))
    elif label and key:
        entity = g.entity_find(graph, label=label, key=key)
    else:
        raise ValidationFailed(details={"entity": ["Give a uid, or a label and a key."]})
    if entity is None:
        raise NotFound("No such entity in memory.")
    return entity


def entity_relationships(*, entity: g.Entity, include_closed: bool = True) -> list[g.Relationship]:
    return g.relationships_of(g.Graph.current(), uid=entity.uid, include_closed=include_closed)


def entity_list(*, label: str | None = None, search: str = "", limit: int = 50, offset: int = 0) -> list[g.Entity]:
    return g.entity_list(
        g.Graph.current(), label=label or None, search=search, limit=max(1, min(limit, 500)), offset=max(0, offset)
    )


def graph_summary() -> dict[str, int]:
    return g.label_counts(g.Graph.current())
