"""Writes to memory. Each one commits its rows, its graph changes and its journal entry in
one Postgres transaction: the AGE graph lives in the same database, so a failure anywhere
leaves none of them.

Embedding (seconds on a CPU for a long document) happens *before* the transaction opens, so
no lock is held while a model runs.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import journal_append
from apps.core.context import current_actor
from apps.core.errors import Conflict, NotFound, ValidationFailed

from . import graph as g
from .embedders import Embedder, get_embedder, warm_up_in_background
from .ingest import chunk_sections, extract_sections
from .models import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    Cardinality,
    Chunk,
    Document,
    EntityType,
    Fact,
    FactStatus,
    MemorySettings,
    RelationshipType,
    SourceType,
)

MAX_FACT_CHARS = 4000
MAX_TITLE_CHARS = 300
MAX_HNSW_DIMENSIONS = 2000  # pgvector's limit for an HNSW index on `vector`
INGESTIBLE = (SourceType.TEXT, SourceType.MARKDOWN, SourceType.PDF)

UUIDish = uuid.UUID | str | None


# --- settings and vocabulary ------------------------------------------------------------------


def memory_settings() -> MemorySettings:
    row = MemorySettings.objects.filter(pk=1).first()
    if row is None:
        row, _ = MemorySettings.objects.get_or_create(pk=1, defaults={"embedder": settings.MEMORY_DEFAULT_EMBEDDER})
    return row


def current_embedder() -> Embedder:
    return get_embedder(memory_settings().embedder)


def embedder_preload() -> threading.Thread | None:
    """For a process that will serve memory (the ASGI server, the crews worker): load the
    default embedder's model in the background now, unless ``MEMORY_PRELOAD_EMBEDDER`` is off.
    Workspaces that chose another embedder load theirs on first use."""
    if not settings.MEMORY_PRELOAD_EMBEDDER:
        return None
    return warm_up_in_background(settings.MEMORY_DEFAULT_EMBEDDER)


def memory_workspace_init(workspace: Any) -> None:
    """Provisioning default: the settings row and the built-in labels with their indexes."""
    MemorySettings.objects.get_or_create(pk=1, defaults={"embedder": settings.MEMORY_DEFAULT_EMBEDDER})
    g.Graph.current().ensure_labels(vertices=g.BUILTIN_ENTITY_LABELS, edges=list(g.BUILTIN_RELATIONSHIPS))


def entity_labels() -> list[str]:
    return [*g.BUILTIN_ENTITY_LABELS, *EntityType.objects.values_list("name", flat=True)]


def relationship_types() -> dict[str, str]:
    return {**g.BUILTIN_RELATIONSHIPS, **dict(RelationshipType.objects.values_list("name", "cardinality"))}


def require_label(label: str) -> str:
    g.check_label(label)
    if label not in g.BUILTIN_ENTITY_LABELS and not EntityType.objects.filter(name=label).exists():
        raise ValidationFailed(
            f"Unknown entity type {label!r}; a workspace admin can add it.",
            code="unknown_entity_type",
            details={"label": [f"Known: {', '.join(entity_labels())}."]},
        )
    return label


def require_rel_type(rel_type: str) -> str:
    """The cardinality of a known relationship type."""
    g.check_rel_type(rel_type)
    cardinality = g.BUILTIN_RELATIONSHIPS.get(rel_type)
    if cardinality is None:
        cardinality = RelationshipType.objects.filter(name=rel_type).values_list("cardinality", flat=True).first()
    if cardinality is None:
        raise ValidationFailed(
            f"Unknown relationship type {rel_type!r}; a workspace admin can add it.",
            code="unknown_relationship_type",
            details={"relationship": [f"Known: {', '.join(sorted(relationship_types()))}."]},
        )
    return cardinality


def _uuid(value: UUIDish, name: str) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(details={name: ["Must be a UUID."]}) from None


def _metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationFailed(details={"metadata": ["Must be an object with string keys."]})
    return dict(value)


def _actor_label() -> str:
    return current_actor().label[:200]


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in vector) + "]"


@transaction.atomic
def entity_type_add(*, name: str, description: str = "") -> EntityType:
    g.check_label(name)
    if name in g.BUILTIN_ENTITY_LABELS or EntityType.objects.filter(name=name).exists():
        raise Conflict(f"The entity type {name} exists.", code="entity_type_exists")
    row = EntityType(name=name, description=description)
    row.full_clean()
    row.save()
    g.Graph.current().ensure_labels(vertices=[name])
    journal_append(kind="memory.written", payload={"what": "entity_type", "id": name, "label": name})
    return row


@transaction.atomic
def relationship_type_add(*, name: str, cardinality: str = Cardinality.MANY, description: str = "") -> RelationshipType:
    g.check_rel_type(name)
    if name in g.BUILTIN_RELATIONSHIPS or RelationshipType.objects.filter(name=name).exists():
        raise Conflict(f"The relationship type {name} exists.", code="relationship_type_exists")
    row = RelationshipType(name=name, cardinality=cardinality, description=description)
    row.full_clean()
    row.save()
    g.Graph.current().ensure_labels(edges=[name])
    journal_append(kind="memory.written", payload={"what": "relationship_type", "id": name, "label": name})
    return row


# --- semantic memory: documents ------------------------------------------------------------------


def document_ingest(
    *,
    title: str,
    source_type: str = SourceType.TEXT,
    text: str | None = None,
    content: bytes | None = None,
    source: str = "",
    metadata: Mapping[str, Any] | None = None,
    crew_id: UUIDish = None,
    agent_id: UUIDish = None,
    mission_id: UUIDish = None,
) -> Document:
    """Extract, chunk, embed and store a text, Markdown or PDF document."""
    if source_type not in INGESTIBLE:
        raise ValidationFailed(details={"source_type": [f"One of: {', '.join(INGESTIBLE)}."]})
    title = (title or "").strip()[:MAX_TITLE_CHARS]
    if not title:
        raise ValidationFailed(details={"title": ["Give the document a title."]})
    meta = _metadata(metadata)
    crew, agent, mission = _uuid(crew_id, "crew_id"), _uuid(agent_id, "agent_id"), _uuid(mission_id, "mission_id")
    sections = extract_sections(source_type, text=text, content=content)
    pieces = chunk_sections(sections)
    if not pieces:
        raise ValidationFailed("There is no text to remember.", details={"text": ["No text found."]})
    raw = content if content is not None else (text or "").encode()
    embedder = current_embedder()
    vectors = embedder.embed_documents([piece.text for piece in pieces])

    with transaction.atomic():
        document = Document(
            title=title,
            source=source[:500],
            source_type=source_type,
            content_sha256=hashlib.sha256(raw).hexdigest(),
            metadata=meta,
            crew_id=crew,
            agent_id=agent,
            mission_id=mission,
            char_count=sum(len(section.text) for section in sections),
            chunk_count=len(pieces),
            embedder=embedder.identity,
            created_by=_actor_label(),
        )
        document.full_clean()
        document.save()
        # Built here from validated parts, so no per-row full_clean (a 500-page PDF is thousands).
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    ordinal=index,
                    text=piece.text,
                    embedding=vector,
                    embedder=embedder.identity,
                    dimensions=embedder.dimensions,
                    metadata={**meta, **piece.metadata, "source_type": source_type},
                    crew_id=crew,
                    agent_id=agent,
                )
                for index, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))
            ],
            batch_size=500,
        )
        journal_append(
            kind="memory.ingested",
            payload={
                "document_id": str(document.id),
                "title": title,
                "source_type": source_type,
                "chunks": len(pieces),
                "embedder": embedder.identity,
                "source": document.source,
                "chars": document.char_count,
                "sha256": document.content_sha256,
            },
            crew_id=crew,
            agent_id=agent,
            mission_id=mission,
        )
    return document


@transaction.atomic
def document_retire(*, document: Document, reason: str = "") -> Document:
    """Stop a document from being found; it stays stored. A fact's document is retired
    through the fact."""
    document = Document.objects.select_for_update().get(pk=document.pk)
    if Fact.objects.filter(document=document).exists():
        raise Conflict("This is a fact's sentence: retire the fact.", code="retire_the_fact")
    if not document.is_active:
        raise Conflict("The document is already retired.", code="already_retired")
    _deactivate_document(document)
    journal_append(
        kind="memory.retired",
        payload={"what": "document", "id": str(document.id), "title": document.title, "reason": reason[:500]},
        crew_id=document.crew_id,
        agent_id=document.agent_id,
    )
    return document


def _deactivate_document(document: Document) -> None:
    document.is_active = False
    document.retired_at = timezone.now()
    document.save(update_fields=["is_active", "retired_at"])
    Chunk.objects.filter(document=document).update(is_active=False)


# --- graph memory: entities and relationships ---------------------------------------------------


def _ref(value: g.EntityRef | Mapping[str, Any] | str, name: str) -> g.EntityRef:
    try:
        ref = g.EntityRef.parse(value)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, code=exc.code, details={name: _messages(exc.details)}) from None
    require_label(ref.label)
    return ref


def _messages(details: Any) -> list[str]:
    if isinstance(details, Mapping):
        return [
            str(m) for messages in details.values() for m in (messages if isinstance(messages, list) else [messages])
        ]
    return [str(details)]


def _entity_text(ref: g.EntityRef | None) -> str | None:
    return f"{ref.label}:{ref.key}" if ref else None


@transaction.atomic
def entity_upsert(
    *, label: str, key: str, name: str | None = None, properties: Mapping[str, Any] | None = None
) -> g.Entity:
    """Create an entity (unique by label and key) or update its name and properties."""
    ref = _ref({"label": label, "key": key, "name": name, "properties": dict(properties or {})}, "entity")
    entity, created = g.entity_upsert(g.Graph.current(), ref=ref, at=timezone.now())
    journal_append(
        kind="memory.written",
        payload={"what": "entity", "id": entity.uid, "label": ref.label, "key": ref.key, "created": created},
    )
    return entity


@dataclass(frozen=True)
class RelationshipWritten:
    relationship: g.Relationship
    closed: list[str]
    created: bool


def _open(
    graph: g.Graph,
    *,
    subject: g.EntityRef,
    rel_type: str,
    obj: g.EntityRef,
    properties: Mapping[str, Any] | None,
    valid_from: datetime,
    fact_id: str | None,
    now: datetime,
) -> RelationshipWritten:
    cardinality = require_rel_type(rel_type)
    g.entity_upsert(graph, ref=subject, at=now)
    g.entity_upsert(graph, ref=obj, at=now)
    relationship, closed, created = g.relationship_open(
        graph,
        rel_type=rel_type,
        cardinality=cardinality,
        source=subject,
        target=obj,
        properties=properties,
        valid_from=valid_from,
        fact_id=fact_id,
        at=now,
    )
    return RelationshipWritten(relationship, closed, created)


def _close_facts_of(
    relationship_uids: Sequence[str], *, at: datetime, status: str, by: Fact | None, reason: str
) -> None:
    """Facts whose relationship was just closed are no longer current either."""
    if not relationship_uids:
        return
    for fact in Fact.objects.select_for_update().filter(
        relationship_uid__in=relationship_uids, status=FactStatus.ACTIVE
    ):
        fact.status = status
        fact.valid_to = max(at, fact.valid_from)
        fact.superseded_by = by
        fact.reason = reason[:500]
        fact.save(update_fields=["status", "valid_to", "superseded_by", "reason"])
        _deactivate_document(fact.document)


@transaction.atomic
def relationship_write(
    *,
    subject: g.EntityRef | Mapping[str, Any] | str,
    relationship: str,
    object: g.EntityRef | Mapping[str, Any] | str,
    properties: Mapping[str, Any] | None = None,
    valid_from: datetime | None = None,
) -> RelationshipWritten:
    """Assert a relationship without a sentence (e.g. from a CRM sync)."""
    now = timezone.now()
    sub, obj = _ref(subject, "subject"), _ref(object, "object")
    written = _open(
        g.Graph.current(),
        subject=sub,
        rel_type=relationship,
        obj=obj,
        properties=properties,
        valid_from=valid_from or now,
        fact_id=None,
        now=now,
    )
    _close_facts_of(written.closed, at=valid_from or now, status=FactStatus.SUPERSEDED, by=None, reason="replaced")
    if written.created:
        journal_append(
            kind="memory.written",
            payload={
                "what": "relationship",
                "id": written.relationship.uid,
                "subject": _entity_text(sub),
                "relationship": relationship,
                "object": _entity_text(obj),
                "closed_relationships": written.closed,
                "valid_from": g.iso(valid_from or now),
            },
        )
    return written


@transaction.atomic
def relationship_close(*, uid: str, at: datetime | None = None, reason: str = "") -> g.Relationship:
    """Close a current relationship (``valid_to``); facts stating it are retired with it."""
    at = at or timezone.now()
    closed = g.relationship_close(g.Graph.current(), uid=str(uid), at=at)
    if closed is None:
        raise NotFound("No current relationship with this id.")
    _close_facts_of([closed.uid], at=at, status=FactStatus.RETIRED, by=None, reason=reason or "relationship closed")
    journal_append(
        kind="memory.retired",
        payload={
            "what": "relationship",
            "id": closed.uid,
            "reason": reason[:500],
            "closed_relationships": [closed.uid],
        },
    )
    return closed


# --- facts: both stores at once -------------------------------------------------------------------


@dataclass(frozen=True)
class _FactInput:
    text: str
    subject: g.EntityRef | None
    relationship: str
    obj: g.EntityRef | None
    properties: dict[str, Any]


def _fact_input(
    *,
    text: str,
    subject: g.EntityRef | Mapping[str, Any] | str | None,
    relationship: str | None,
    obj: g.EntityRef | Mapping[str, Any] | str | None,
    properties: Mapping[str, Any] | None,
) -> _FactInput:
    text = (text or "").strip()
    if not text or len(text) > MAX_FACT_CHARS:
        raise ValidationFailed(details={"text": [f"A fact is 1-{MAX_FACT_CHARS} characters."]})
    sub = _ref(subject, "subject") if subject else None
    ob = _ref(obj, "object") if obj else None
    rel = (relationship or "").strip()
    if rel:
        if sub is None or ob is None:
            raise ValidationFailed(details={"relationship": ["A relationship needs a subject and an object."]})
        require_rel_type(rel)
    elif ob is not None:
        raise ValidationFailed(details={"object": ["An object needs a relationship."]})
    props = g.check_properties(properties, g.RELATIONSHIP_RESERVED)
    return _FactInput(text=text, subject=sub, relationship=rel, obj=ob, properties=props)


def _store_fact(
    item: _FactInput,
    *,
    vector: Sequence[float],
    embedder: Embedder,
    valid_from: datetime,
    now: datetime,
    crew: uuid.UUID | None,
    agent: uuid.UUID | None,
    mission: uuid.UUID | None,
    source: str,
    metadata: dict[str, Any],
) -> tuple[Fact, RelationshipWritten | None]:
    """Inside the caller's transaction: the sentence, the entities, the relationship."""
    document = Document(
        title=item.text[:120],
        source=source[:500],
        source_type=SourceType.FACT,
        content_sha256=hashlib.sha256(item.text.encode()).hexdigest(),
        metadata=metadata,
        crew_id=crew,
        agent_id=agent,
        mission_id=mission,
        char_count=len(item.text),
        chunk_count=1,
        embedder=embedder.identity,
        created_by=_actor_label(),
    )
    document.full_clean()
    document.save()
    fact = Fact(
        text=item.text,
        document=document,
        subject_label=item.subject.label if item.subject else "",
        subject_key=item.subject.key if item.subject else "",
        relationship=item.relationship,
        object_label=item.obj.label if item.obj else "",
        object_key=item.obj.key if item.obj else "",
        properties=item.properties,
        crew_id=crew,
        agent_id=agent,
        mission_id=mission,
        source=source[:500],
        valid_from=valid_from,
        created_by=_actor_label(),
    )
    fact.full_clean()
    fact.save()
    chunk_meta = {**metadata, "source_type": SourceType.FACT, "fact_id": str(fact.id)}
    if item.subject:
        chunk_meta["subject"] = f"{item.subject.label}:{item.subject.key}"
    Chunk.objects.create(
        document=document,
        ordinal=0,
        text=item.text,
        embedding=list(vector),
        embedder=embedder.identity,
        dimensions=embedder.dimensions,
        metadata=chunk_meta,
        crew_id=crew,
        agent_id=agent,
    )
    graph = g.Graph.current()
    written: RelationshipWritten | None = None
    if item.relationship and item.subject and item.obj:
        written = _open(
            graph,
            subject=item.subject,
            rel_type=item.relationship,
            obj=item.obj,
            properties=item.properties,
            valid_from=valid_from,
            fact_id=str(fact.id),
            now=now,
        )
        fact.relationship_uid = uuid.UUID(written.relationship.uid)
        fact.save(update_fields=["relationship_uid"])
    elif item.subject:
        g.entity_upsert(graph, ref=item.subject, at=now)
    return fact, written


def memory_write_fact(
    *,
    text: str,
    subject: g.EntityRef | Mapping[str, Any] | str | None = None,
    relationship: str | None = None,
    object: g.EntityRef | Mapping[str, Any] | str | None = None,
    properties: Mapping[str, Any] | None = None,
    valid_from: datetime | None = None,
    crew_id: UUIDish = None,
    agent_id: UUIDish = None,
    mission_id: UUIDish = None,
    source: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> Fact:
    """Remember a fact: its sentence in semantic memory and, when ``relationship`` is given,
    ``(subject)-[relationship]->(object)`` in the graph, with one journal entry, in one
    transaction. Entities are created on first mention. For single-valued relationships
    (WORKS_AT, ON_PLAN, ROLE per company) the previous current one is closed at
    ``valid_from`` and its fact marked superseded. Writing the same active fact again
    returns it unchanged."""
    item = _fact_input(text=text, subject=subject, relationship=relationship, obj=object, properties=properties)
    crew, agent, mission = _uuid(crew_id, "crew_id"), _uuid(agent_id, "agent_id"), _uuid(mission_id, "mission_id")
    meta = _metadata(metadata)
    embedder = current_embedder()
    vector = embedder.embed_documents([item.text])[0]
    now = timezone.now()
    start = valid_from or now

    with transaction.atomic():
        graph = g.Graph.current()
        graph.lock("fact", item.text)
        existing = Fact.objects.filter(
            text=item.text,
            status=FactStatus.ACTIVE,
            subject_label=item.subject.label if item.subject else "",
            subject_key=item.subject.key if item.subject else "",
            relationship=item.relationship,
            object_label=item.obj.label if item.obj else "",
            object_key=item.obj.key if item.obj else "",
            crew_id=crew,
            agent_id=agent,
        ).first()
        if existing is not None and existing.properties == item.properties:
            return existing
        fact, written = _store_fact(
            item,
            vector=vector,
            embedder=embedder,
            valid_from=start,
            now=now,
            crew=crew,
            agent=agent,
            mission=mission,
            source=source,
            metadata=meta,
        )
        closed = written.closed if written else []
        _close_facts_of(closed, at=start, status=FactStatus.SUPERSEDED, by=fact, reason="superseded by a newer fact")
        journal_append(
            kind="memory.written",
            payload={
                "what": "fact",
                "id": str(fact.id),
                "text": item.text[:1000],
                "subject": _entity_text(item.subject),
                "relationship": item.relationship or None,
                "object": _entity_text(item.obj),
                "relationship_uid": str(fact.relationship_uid) if fact.relationship_uid else None,
                "closed_relationships": closed,
                "document_id": str(fact.document_id),
                "valid_from": g.iso(start),
            },
            crew_id=crew,
            agent_id=agent,
            mission_id=mission,
        )
    return fact


def _close_fact_relationship(graph: g.Graph, fact: Fact, at: datetime) -> list[str]:
    """Close the fact's relationship unless another current fact still states it."""
    if fact.relationship_uid is None:
        return []
    shared = Fact.objects.filter(relationship_uid=fact.relationship_uid, status=FactStatus.ACTIVE).exclude(pk=fact.pk)
    if shared.exists():
        return []
    closed = g.relationship_close(graph, uid=str(fact.relationship_uid), at=at)
    return [closed.uid] if closed else []


def _locked_active(fact: Fact) -> Fact:
    locked = Fact.objects.select_for_update().select_related("document").get(pk=fact.pk)
    if locked.status != FactStatus.ACTIVE:
        raise Conflict(f"This fact is {locked.status}; only an active fact can change.", code="fact_not_active")
    return locked


def fact_correct(
    *,
    fact: Fact,
    text: str,
    object: g.EntityRef | Mapping[str, Any] | str | None = None,
    properties: Mapping[str, Any] | None = None,
    reason: str = "",
) -> Fact:
    """Replace a wrong fact: the old one is closed (status corrected, kept) and a new one with
    the same subject and relationship type takes its place, in one transaction."""
    new_object: Any = object
    if new_object is None and fact.object_label:
        new_object = {"label": fact.object_label, "key": fact.object_key}
    item = _fact_input(
        text=text,
        subject={"label": fact.subject_label, "key": fact.subject_key} if fact.subject_label else None,
        relationship=fact.relationship or None,
        obj=new_object,
        properties=fact.properties if properties is None else properties,
    )
    embedder = current_embedder()
    vector = embedder.embed_documents([item.text])[0]
    now = timezone.now()
    with transaction.atomic():
        old = _locked_active(fact)
        graph = g.Graph.current()
        closed = _close_fact_relationship(graph, old, now)
        old.status = FactStatus.CORRECTED
        old.valid_to = max(now, old.valid_from)
        old.reason = reason[:500]
        old.save(update_fields=["status", "valid_to", "reason"])
        _deactivate_document(old.document)
        new, written = _store_fact(
            item,
            vector=vector,
            embedder=embedder,
            valid_from=now,
            now=now,
            crew=old.crew_id,
            agent=old.agent_id,
            mission=old.mission_id,
            source=old.source,
            metadata=dict(old.document.metadata),
        )
        closed += written.closed if written else []
        _close_facts_of(
            written.closed if written else [], at=now, status=FactStatus.SUPERSEDED, by=new, reason="superseded"
        )
        old.superseded_by = new
        old.save(update_fields=["superseded_by"])
        journal_append(
            kind="memory.corrected",
            payload={
                "fact_id": str(old.id),
                "new_fact_id": str(new.id),
                "text": new.text[:1000],
                "previous_text": old.text[:1000],
                "reason": reason[:500],
                "closed_relationships": closed,
                "relationship_uid": str(new.relationship_uid) if new.relationship_uid else None,
            },
            crew_id=old.crew_id,
            agent_id=old.agent_id,
        )
    return new


@transaction.atomic
def fact_retire(*, fact: Fact, reason: str = "") -> Fact:
    """The fact stops being current: its relationship gets ``valid_to``, its sentence stops
    being found. Both stay stored."""
    locked = _locked_active(fact)
    now = timezone.now()
    closed = _close_fact_relationship(g.Graph.current(), locked, now)
    locked.status = FactStatus.RETIRED
    locked.valid_to = max(now, locked.valid_from)
    locked.reason = reason[:500]
    locked.save(update_fields=["status", "valid_to", "reason"])
    _deactivate_document(locked.document)
    journal_append(
        kind="memory.retired",
        payload={
            "what": "fact",
            "id": str(locked.id),
            "text": locked.text[:1000],
            "reason": reason[:500],
            "closed_relationships": closed,
        },
        crew_id=locked.crew_id,
        agent_id=locked.agent_id,
    )
    return locked


# --- embedders -----------------------------------------------------------------------------------


def vector_index_ensure(*, dimensions: int) -> bool:
    """A partial HNSW index for vectors of ``dimensions`` (the 384 one comes with the
    migration). Returns False when pgvector cannot index that many dimensions (search is then
    exact)."""
    dims = int(dimensions)
    if not 1 <= dims <= MAX_HNSW_DIMENSIONS:
        return False
    # dims is an int, formatted as one; it cannot carry anything else into the statement.
    with connection.cursor() as cursor:
        # Postgres refuses CREATE INDEX while this transaction has deferred foreign-key checks
        # pending (from rows written earlier in it): run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS memory_chunk_hnsw_{dims} ON memory_chunk "
            f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE dimensions = {dims}"
        )
    return True


@dataclass(frozen=True)
class ReembedResult:
    from_embedder: str
    to_embedder: str
    identity: str
    chunks: int
    seconds: float


def memory_reembed(
    *,
    embedder: str,
    batch_size: int = 128,
    progress: Callable[[int, int], None] | None = None,
) -> ReembedResult:
    """Switch the workspace to ``embedder`` and embed every chunk again with it.

    The switch comes first: from then on, search compares only vectors of the new identity,
    so a half-done run returns fewer results, never vectors of two models compared with each
    other. Each batch commits on its own; running the command again resumes where it stopped.
    """
    started = time.perf_counter()
    target = get_embedder(embedder)
    with transaction.atomic():
        row = MemorySettings.objects.select_for_update().filter(pk=1).first() or memory_settings()
        previous = row.embedder
        row.embedder = embedder
        row.full_clean()
        row.save()
        vector_index_ensure(dimensions=target.dimensions)
    pending = Chunk.objects.exclude(embedder=target.identity)
    total = pending.count()
    done = 0
    if progress:
        progress(done, total)
    last_id = 0
    while True:
        batch = list(pending.filter(id__gt=last_id).order_by("id").only("id", "text")[:batch_size])
        if not batch:
            break
        vectors = target.embed_documents([chunk.text for chunk in batch])
        with transaction.atomic():
            for chunk, vector in zip(batch, vectors, strict=True):
                chunk.embedding = vector
                chunk.embedder = target.identity
                chunk.dimensions = target.dimensions
            Chunk.objects.bulk_update(batch, ["embedding", "embedder", "dimensions"])
        last_id = batch[-1].id
        done += len(batch)
        if progress:
            progress(done, total)
    seconds = time.perf_counter() - started
    with transaction.atomic():
        Document.objects.exclude(embedder=target.identity).update(embedder=target.identity)
        journal_append(
            kind="memory.reembedded",
            payload={
                "from_embedder": previous,
                "to_embedder": embedder,
                "chunks": done,
                "seconds": round(seconds, 3),
                "complete": not Chunk.objects.exclude(embedder=target.identity).exists(),
            },
        )
    return ReembedResult(
        from_embedder=previous, to_embedder=embedder, identity=target.identity, chunks=done, seconds=seconds
    )
