"""Journal entry kinds the memory app writes (registered from ``MemoryConfig.ready()``).

``what`` says which part of memory changed: "fact", "entity", "relationship", "document",
"entity_type" or "relationship_type".
"""

from __future__ import annotations

from apps.audit.catalog import EntryKind, Severity, register

NONE = type(None)
OPT_STR = (str, NONE)

MEMORY_KINDS = (
    EntryKind(
        "memory.written",
        Severity.INFO,
        required={"what": str, "id": str},
        optional={
            "text": str,
            "subject": OPT_STR,
            "relationship": OPT_STR,
            "object": OPT_STR,
            "relationship_uid": OPT_STR,
            "closed_relationships": list,
            "document_id": OPT_STR,
            "label": str,
            "key": str,
            "created": bool,
            "properties": dict,
            "valid_from": OPT_STR,
        },
        description="Something was remembered: a fact (sentence + relationship), an entity, a relationship or a type.",
    ),
    EntryKind(
        "memory.corrected",
        Severity.NOTICE,
        required={"fact_id": str, "new_fact_id": str, "text": str, "previous_text": str},
        optional={"reason": str, "closed_relationships": list, "relationship_uid": OPT_STR},
        description="A fact was corrected: the old one is closed (kept), a new one replaces it.",
    ),
    EntryKind(
        "memory.retired",
        Severity.NOTICE,
        required={"what": str, "id": str},
        optional={"reason": str, "text": str, "closed_relationships": list, "title": str},
        description="A fact, relationship or document stopped being current (closed, not deleted).",
    ),
    EntryKind(
        "memory.ingested",
        Severity.INFO,
        required={"document_id": str, "title": str, "source_type": str, "chunks": int, "embedder": str},
        optional={"source": str, "chars": int, "sha256": str},
        description="A document was ingested into semantic memory.",
    ),
    EntryKind(
        "memory.reembedded",
        Severity.NOTICE,
        required={"from_embedder": str, "to_embedder": str, "chunks": int},
        optional={"seconds": float, "complete": bool},
        description="The workspace switched embedders and its chunks were embedded again.",
    ),
)


def register_all() -> None:
    register(*MEMORY_KINDS)
