"""Graph memory: Cypher on the active workspace's Apache AGE graph, safely.

Three rules keep values out of the query text:

* Every value travels in AGE's ``params`` argument (one agtype map, bound as a SQL parameter);
  the Cypher text refers to it as ``$name``. Nothing a user, an agent or a document says is
  ever formatted into the text.
* What cannot be a parameter in Cypher (the graph name, labels, relationship types, property
  names) is checked against strict identifier patterns, and labels and types against the
  workspace's allowlist, before it is placed in the text.
* The graph name comes from the workspace row of the *active schema*, so a workspace can only
  ever reach its own graph.

Validity: every relationship carries ``valid_from`` and, once closed, ``valid_to`` (ISO 8601
UTC strings, which order correctly as text). Closing a relationship keeps it: history is a
query away (``at=``).
"""

from __future__ import annotations

import json
import re
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.db import connection as _connection
from django.db import transaction
from psycopg import sql

from apps.core.errors import NotFound, ValidationFailed

connection: Any = _connection  # django-tenants adds schema_name; the stubs do not know

GRAPH_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{2,62}$")
LABEL_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")  # PascalCase: Person, SupportTicket
REL_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,62}$")  # WORKS_AT
PROPERTY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # snake_case
_COLUMN_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_AGTYPE_SUFFIX = re.compile(r"::(vertex|edge|path|numeric|integer|float)$")

BUILTIN_ENTITY_LABELS: tuple[str, ...] = ("Person", "Company", "Project", "Ticket", "Plan")

MANY = "many"
ONE_PER_SOURCE = "one_per_source"
ONE_PER_PAIR = "one_per_pair"
BUILTIN_RELATIONSHIPS: dict[str, str] = {
    "WORKS_AT": ONE_PER_SOURCE,  # a person works at one company at a time
    "ROLE": ONE_PER_PAIR,  # their role there (property "title")
    "ON_PLAN": ONE_PER_SOURCE,  # a company is on one plan at a time
    "REPORTS_TO": ONE_PER_SOURCE,
    "OPENED": MANY,  # person -> ticket
    "ABOUT": MANY,  # ticket -> project/topic
    "MEMBER_OF": MANY,
    "OWNS": MANY,
    "USES": MANY,
    "RELATED_TO": MANY,
}

# Properties the memory app manages itself; callers cannot set them.
ENTITY_RESERVED = frozenset({"uid", "key", "name", "created_at", "updated_at", "valid_from", "valid_to"})
RELATIONSHIP_RESERVED = frozenset({"uid", "valid_from", "valid_to", "created_at", "fact_id"})


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order inside the graph."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def parse_agtype(value: Any) -> Any:
    """agtype text -> Python. Queries here return maps and scalars, never whole paths."""
    if value is None or not isinstance(value, str):
        return value
    return json.loads(_AGTYPE_SUFFIX.sub("", value))


# --- identifiers ----------------------------------------------------------------------------


def check_label(label: str) -> str:
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise ValidationFailed(
            "An entity type is one PascalCase word of letters and digits (e.g. Person).",
            code="invalid_label",
            details={"label": [f"Not an entity type name: {label!r}."]},
        )
    return label


def check_rel_type(rel_type: str) -> str:
    if not isinstance(rel_type, str) or not REL_TYPE_RE.match(rel_type):
        raise ValidationFailed(
            "A relationship type is UPPER_SNAKE_CASE (e.g. WORKS_AT).",
            code="invalid_relationship_type",
            details={"relationship": [f"Not a relationship type name: {rel_type!r}."]},
        )
    return rel_type


def check_properties(properties: Mapping[str, Any] | None, reserved: frozenset[str]) -> dict[str, Any]:
    """Property names go into the query text (AGE takes no map parameter in SET), so they
    are identifiers: snake_case and not one the app manages. Values must be JSON scalars or
    lists/maps of them; they travel as parameters."""
    result: dict[str, Any] = {}
    for name, value in (properties or {}).items():
        if not isinstance(name, str) or not PROPERTY_RE.match(name):
            raise ValidationFailed(
                "Property names are snake_case identifiers.",
                code="invalid_property",
                details={"properties": [f"Not a property name: {name!r}."]},
            )
        if name in reserved:
            raise ValidationFailed(
                f"The property {name!r} is managed by memory.",
                code="invalid_property",
                details={"properties": [f"{name!r} is reserved."]},
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValidationFailed(
                "Property values must be JSON values.",
                code="invalid_property",
                details={"properties": [f"{name!r} is not a JSON value."]},
            ) from None
        result[name] = value
    return result


def _set_clause(variable: str, properties: Mapping[str, Any], params: dict[str, Any]) -> str:
    """``SET v.a = $p_a, ...`` for validated names; the values join ``params``."""
    parts = []
    for index, (name, value) in enumerate(sorted(properties.items())):
        param = f"prop{index}"
        params[param] = value
        parts.append(f"{variable}.{name} = ${param}")
    return ("SET " + ", ".join(parts)) if parts else ""


# --- the executor -------------------------------------------------------------------------------

# AGE's operators and functions live in ag_catalog; django-tenants sets search_path to the
# workspace schema and public only. Adding ag_catalog for the graph query's transaction alone
# leaves every other query (and every other app) exactly as django-tenants set it up.
_AG_SEARCH_PATH = "SELECT set_config('search_path', %s, true)"


# Connections on which AGE is known to be loaded (preloaded by the server, or LOADed here).
_age_loaded: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _load_age(cursor: Any) -> None:
    """AGE must be loaded in the session: our image preloads it (shared_preload_libraries);
    on a server that does not, ``LOAD 'age'`` once per connection."""
    raw = connection.connection
    if _age_loaded.get(raw):
        return
    cursor.execute("SELECT strpos(current_setting('shared_preload_libraries'), 'age') > 0")
    row = cursor.fetchone()
    if not (row and row[0]):
        cursor.execute("LOAD 'age'")
    _age_loaded[raw] = True


@dataclass(frozen=True)
class Graph:
    name: str

    def __post_init__(self) -> None:
        if not GRAPH_NAME_RE.match(self.name):
            raise ValidationFailed("The workspace's graph name is not valid.", code="invalid_graph")

    @classmethod
    def current(cls) -> Graph:
        """The AGE graph of the workspace whose schema is active on this connection."""
        from apps.tenants.models import Workspace

        schema = getattr(connection, "schema_name", None)
        graph_name = (
            Workspace.objects.filter(schema_name=schema).values_list("graph_name", flat=True).first()
            if schema
            else None
        )
        if not graph_name:
            raise NotFound("No workspace is active, so there is no graph.", code="no_workspace")
        if not GRAPH_NAME_RE.match(graph_name):
            raise ValidationFailed("The workspace's graph name is not valid.", code="invalid_graph")
        return cls(graph_name)

    # Cypher text is assembled only by this module from constants and checked identifiers.
    def run(
        self, query: str, params: Mapping[str, Any] | None = None, *, columns: Sequence[str] = ("v",)
    ) -> list[tuple[Any, ...]]:
        if "$$" in query:
            raise ValueError("Cypher text must not contain $$")
        for column in columns:
            if not _COLUMN_RE.match(column):
                raise ValueError(f"bad column name {column!r}")
        statement = (
            # The name matched GRAPH_NAME_RE (no quote can be in it); AGE wants it as a literal.
            "SELECT * FROM ag_catalog.cypher('"  # noqa: S608  (values go in $1, see above)
            + self.name
            + "', $$ "
            + query.replace("%", "%%")
            + " $$, %s::ag_catalog.agtype) AS ("
            + ", ".join(f"{column} ag_catalog.agtype" for column in columns)
            + ")"
        )
        payload = json.dumps(dict(params or {}), ensure_ascii=False, allow_nan=False)
        # set_config(..., true) lasts until the end of the transaction: make sure there is one.
        schema = str(getattr(connection, "schema_name", "") or "")
        if not GRAPH_NAME_RE.match(schema):
            raise NotFound("No workspace is active, so there is no graph.", code="no_workspace")
        connection.ensure_connection()
        # set_config(..., true) lasts until the end of the transaction: make sure there is one.
        with transaction.atomic(savepoint=False), psycopg.Cursor(connection.connection) as cursor:
            _load_age(cursor)
            # The workspace's own path plus ag_catalog, for this transaction only: set here, on
            # the driver's cursor, rather than by django-tenants on a Django cursor (one round
            # trip less per query), and every other query keeps the path django-tenants set.
            cursor.execute(_AG_SEARCH_PATH, [f'"{schema}", public, ag_catalog'], prepare=False)
            # AGE insists on a real bind parameter ($1) for params, and Django's cursors bind
            # client-side; this psycopg cursor on the same connection (same transaction) binds
            # server-side. prepare=False: a one-shot plan, so AGE folds the params into index
            # conditions ({key: $key} uses the GIN index).
            cursor.execute(statement, [payload], prepare=False)
            rows = cursor.fetchall()
        return [tuple(parse_agtype(value) for value in row) for row in rows]

    # --- schema -----------------------------------------------------------------------------

    def existing_labels(self) -> dict[str, str]:
        """{label name: 'v' | 'e'} of this graph."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.name, l.kind FROM ag_catalog.ag_label l JOIN ag_catalog.ag_graph g ON g.graphid = l.graph "
                "WHERE g.name = %s",
                [self.name],
            )
            return {str(name): str(kind) for name, kind in cursor.fetchall()}

    def ensure_labels(self, *, vertices: Iterable[str] = (), edges: Iterable[str] = ()) -> None:
        """Create missing labels with the indexes the lookups here rely on: by id, by the
        ``properties`` map (GIN, for ``{key: ...}`` and ``{uid: ...}`` patterns), and for edges by
        start and end vertex. AGE creates none of them itself."""
        wanted = [(check_label(v), "v") for v in vertices] + [(check_rel_type(e), "e") for e in edges]
        existing = self.existing_labels()
        missing = [(name, kind) for name, kind in wanted if name not in existing]
        if not missing:
            return
        with transaction.atomic(), connection.cursor() as cursor:
            for name, kind in missing:
                function = "create_vlabel" if kind == "v" else "create_elabel"
                cursor.execute(f"SELECT ag_catalog.{function}(%s, %s)", [self.name, name])
                table = sql.Identifier(self.name, name)
                stem = "qd_" + name.lower()[:40]
                statements = [
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (id)").format(sql.Identifier(stem + "_id"), table),
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (properties)").format(
                        sql.Identifier(stem + "_props"), table
                    ),
                ]
                if kind == "e":
                    statements += [
                        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (start_id)").format(
                            sql.Identifier(stem + "_start"), table
                        ),
                        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (end_id)").format(
                            sql.Identifier(stem + "_end"), table
                        ),
                    ]
                for statement in statements:
                    cursor.execute(statement.as_string(cursor.connection))

    def lock(self, *parts: str) -> None:
        """Serialise writers of one entity (or one relationship slot) until commit: without it,
        two concurrent first writes of the same key would both see "missing" and both CREATE."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ["\x1f".join((self.name, *parts))])


# --- entities and relationships -----------------------------------------------------------------


@dataclass(frozen=True)
class EntityRef:
    label: str
    key: str
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: EntityRef | Mapping[str, Any] | str) -> EntityRef:
        """From an EntityRef, a mapping {"label", "key", "name"?, "properties"?} or "Label:key"."""
        if isinstance(value, EntityRef):
            ref = value
        elif isinstance(value, Mapping):
            unknown = set(value) - {"label", "key", "name", "properties"}
            if unknown:
                raise ValidationFailed(details={"entity": [f"Unknown keys: {sorted(unknown)}."]})
            ref = cls(
                label=str(value.get("label", "")),
                key=str(value.get("key", "")),
                name=value.get("name"),
                properties=value.get("properties") or {},
            )
        elif isinstance(value, str) and ":" in value:
            label, _, key = value.partition(":")
            ref = cls(label=label.strip(), key=key.strip())
        else:
            raise ValidationFailed(details={"entity": ["Give a label and a key, e.g. Person:sarah@acme.example."]})
        check_label(ref.label)
        if not ref.key or len(ref.key) > 300:
            raise ValidationFailed(details={"entity": ["The key must be 1-300 characters."]})
        return ref


@dataclass(frozen=True)
class Entity:
    label: str
    properties: dict[str, Any]

    @property
    def uid(self) -> str:
        return str(self.properties.get("uid", ""))

    @property
    def key(self) -> str:
        return str(self.properties.get("key", ""))

    @property
    def name(self) -> str:
        return str(self.properties.get("name") or self.properties.get("key", ""))

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "uid": self.uid, "key": self.key, "name": self.name, "properties": self.properties}


@dataclass(frozen=True)
class Relationship:
    type: str
    properties: dict[str, Any]
    source: Entity | None = None
    target: Entity | None = None

    @property
    def uid(self) -> str:
        return str(self.properties.get("uid", ""))

    @property
    def valid_from(self) -> datetime | None:
        return parse_iso(self.properties.get("valid_from"))

    @property
    def valid_to(self) -> datetime | None:
        return parse_iso(self.properties.get("valid_to"))

    @property
    def is_current(self) -> bool:
        return self.properties.get("valid_to") is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "uid": self.uid,
            "properties": {k: v for k, v in self.properties.items() if k not in RELATIONSHIP_RESERVED},
            "valid_from": self.properties.get("valid_from"),
            "valid_to": self.properties.get("valid_to"),
            "fact_id": self.properties.get("fact_id"),
            "source": self.source.as_dict() if self.source else None,
            "target": self.target.as_dict() if self.target else None,
        }


def entity_find(graph: Graph, *, label: str, key: str) -> Entity | None:
    query = f"MATCH (n:{check_label(label)} {{key: $key}}) RETURN properties(n) LIMIT 1"
    rows = graph.run(query, {"key": key})
    return Entity(label=label, properties=rows[0][0]) if rows else None


def entity_by_uid(graph: Graph, *, uid: str) -> Entity | None:
    rows = graph.run("MATCH (n {uid: $uid}) RETURN label(n), properties(n) LIMIT 1", {"uid": uid}, columns=("l", "p"))
    return Entity(label=rows[0][0], properties=rows[0][1]) if rows else None


def entity_upsert(graph: Graph, *, ref: EntityRef, at: datetime) -> tuple[Entity, bool]:
    """Create the entity or update its name and properties. Returns (entity, created)."""
    label = check_label(ref.label)
    properties = check_properties(ref.properties, ENTITY_RESERVED)
    graph.ensure_labels(vertices=[label])
    graph.lock("entity", label, ref.key)
    existing = entity_find(graph, label=label, key=ref.key)
    params: dict[str, Any] = {"key": ref.key, "at": iso(at)}
    changes = dict(properties)
    if existing is None:
        params.update(uid=str(uuid.uuid4()), name=ref.name or ref.key)
        query = (
            f"CREATE (n:{label} {{uid: $uid, key: $key, name: $name, created_at: $at, updated_at: $at}}) "
            f"{_set_clause('n', changes, params)} RETURN properties(n)"
        )
        return Entity(label=label, properties=graph.run(query, params)[0][0]), True
    if ref.name:
        changes["name"] = ref.name
    if all(existing.properties.get(k) == v for k, v in changes.items()):
        return existing, False
    changes["updated_at"] = params.pop("at")
    query = f"MATCH (n:{label} {{key: $key}}) {_set_clause('n', changes, params)} RETURN properties(n)"
    return Entity(label=label, properties=graph.run(query, params)[0][0]), False


def relationship_open(
    graph: Graph,
    *,
    rel_type: str,
    cardinality: str,
    source: EntityRef,
    target: EntityRef,
    properties: Mapping[str, Any] | None,
    valid_from: datetime,
    fact_id: str | None,
    at: datetime,
) -> tuple[Relationship, list[str], bool]:
    """Open a relationship from ``valid_from``. For single-valued types, the current one it
    replaces is closed at ``valid_from`` (kept, not deleted). Returns (relationship, uids of
    the closed ones, created). Writing the same current relationship again changes nothing."""
    rel_type = check_rel_type(rel_type)
    props = check_properties(properties, RELATIONSHIP_RESERVED)
    sl, tl = check_label(source.label), check_label(target.label)
    graph.ensure_labels(edges=[rel_type])
    graph.lock("rel", rel_type, sl, source.key, *([] if cardinality == ONE_PER_SOURCE else [tl, target.key]))
    keys = {"skey": source.key, "tkey": target.key}

    current = graph.run(
        f"MATCH (a:{sl} {{key: $skey}})-[r:{rel_type}]->(b:{tl} {{key: $tkey}}) "
        "WHERE r.valid_to IS NULL RETURN properties(r)",
        keys,
    )
    for (existing,) in current:
        if all(existing.get(k) == v for k, v in props.items()) and all(
            k in props for k in existing if k not in RELATIONSHIP_RESERVED
        ):
            return Relationship(type=rel_type, properties=existing), [], False

    closed: list[str] = []
    closing = {"at": iso(valid_from), **keys}
    if cardinality == ONE_PER_SOURCE:
        closed = [
            row[0]
            for row in graph.run(
                f"MATCH (a:{sl} {{key: $skey}})-[r:{rel_type}]->() WHERE r.valid_to IS NULL "
                "SET r.valid_to = $at RETURN r.uid",
                closing,
            )
        ]
    elif cardinality == ONE_PER_PAIR:
        closed = [
            row[0]
            for row in graph.run(
                f"MATCH (a:{sl} {{key: $skey}})-[r:{rel_type}]->(b:{tl} {{key: $tkey}}) WHERE r.valid_to IS NULL "
                "SET r.valid_to = $at RETURN r.uid",
                closing,
            )
        ]

    params: dict[str, Any] = {
        **keys,
        "uid": str(uuid.uuid4()),
        "valid_from": iso(valid_from),
        "at": iso(at),
        "fact_id": fact_id,
    }
    query = (
        f"MATCH (a:{sl} {{key: $skey}}), (b:{tl} {{key: $tkey}}) "
        f"CREATE (a)-[r:{rel_type} {{uid: $uid, valid_from: $valid_from, created_at: $at, fact_id: $fact_id}}]->(b) "
        f"{_set_clause('r', props, params)} RETURN properties(r)"
    )
    rows = graph.run(query, params)
    if not rows:
        missing = source if entity_find(graph, label=sl, key=source.key) is None else target
        raise NotFound(
            f"No {missing.label} with key {missing.key!r} in memory.",
            details={"label": missing.label, "key": missing.key},
        )
    return Relationship(type=rel_type, properties=rows[0][0]), closed, True


_EDGE_RETURN = "RETURN type(r), properties(r), label(a), properties(a), label(b), properties(b)"


def relationship_close(graph: Graph, *, uid: str, at: datetime) -> Relationship | None:
    """Set ``valid_to`` on a current relationship. None when there is no such current one."""
    rows = graph.run(
        "MATCH (a)-[r {uid: $uid}]->(b) WHERE r.valid_to IS NULL SET r.valid_to = $at "
        "RETURN type(r), properties(r), label(a), properties(a), label(b), properties(b)",
        {"uid": uid, "at": iso(at)},
        columns=("t", "r", "al", "a", "bl", "b"),
    )
    if not rows:
        return None
    t, r, al, a, bl, b = rows[0]
    return Relationship(type=t, properties=r, source=Entity(al, a), target=Entity(bl, b))


def relationship_get(graph: Graph, *, uid: str) -> Relationship | None:
    rows = graph.run(
        "MATCH (a)-[r {uid: $uid}]->(b) " + _EDGE_RETURN,
        {"uid": uid},
        columns=("t", "r", "al", "a", "bl", "b"),
    )
    if not rows:
        return None
    t, r, al, a, bl, b = rows[0]
    return Relationship(type=t, properties=r, source=Entity(al, a), target=Entity(bl, b))


def _valid_at(properties: Mapping[str, Any], at: str | None) -> bool:
    if at is None:
        return properties.get("valid_to") is None
    start, end = properties.get("valid_from"), properties.get("valid_to")
    return (start is None or start <= at) and (end is None or end > at)


def relationships_of(
    graph: Graph, *, uid: str, include_closed: bool = False, at: datetime | None = None
) -> list[Relationship]:
    """Relationships into and out of an entity, newest first."""
    at_text = iso(at) if at else None
    out = graph.run(
        "MATCH (a {uid: $uid})-[r]->(b) " + _EDGE_RETURN,
        {"uid": uid},
        columns=("t", "r", "al", "a", "bl", "b"),
    )
    into = graph.run(
        "MATCH (a)-[r]->(b {uid: $uid}) " + _EDGE_RETURN,
        {"uid": uid},
        columns=("t", "r", "al", "a", "bl", "b"),
    )
    result = [
        Relationship(type=t, properties=r, source=Entity(al, a), target=Entity(bl, b))
        for t, r, al, a, bl, b in [*out, *into]
        if include_closed or _valid_at(r, at_text)
    ]
    result.sort(key=lambda rel: str(rel.properties.get("valid_from") or ""), reverse=True)
    return result


@dataclass(frozen=True)
class Hop:
    rel: Relationship
    node: Entity
    via: Hop | None = None


def neighborhood(
    graph: Graph, *, label: str, key: str, at: datetime | None = None, limit: int = 500
) -> tuple[Entity | None, list[Hop]]:
    """The entity and everything up to two outgoing hops away, valid at ``at`` (default:
    now). One query for each hop, each an index lookup per step."""
    label = check_label(label)
    at_text = iso(at) if at else None
    rows = graph.run(
        f"MATCH (p:{label} {{key: $key}}) OPTIONAL MATCH (p)-[r1]->(n1) OPTIONAL MATCH (n1)-[r2]->(n2) "
        "RETURN properties(p), type(r1), properties(r1), label(n1), properties(n1), "
        f"type(r2), properties(r2), label(n2), properties(n2) LIMIT {int(limit)}",
        {"key": key},
        columns=("p", "t1", "r1", "l1", "n1", "t2", "r2", "l2", "n2"),
    )
    if not rows:
        return None, []
    subject = Entity(label=label, properties=rows[0][0])
    hops: list[Hop] = []
    first: dict[str, Hop] = {}
    for _p, t1, r1, l1, n1, t2, r2, l2, n2 in rows:
        if t1 is None or not _valid_at(r1, at_text):
            continue
        hop = first.get(r1["uid"])
        if hop is None:
            hop = Hop(rel=Relationship(type=t1, properties=r1), node=Entity(l1, n1))
            first[r1["uid"]] = hop
            hops.append(hop)
        if t2 is not None and _valid_at(r2, at_text):
            hops.append(Hop(rel=Relationship(type=t2, properties=r2), node=Entity(l2, n2), via=hop))
    return subject, hops


def entity_list(
    graph: Graph, *, label: str | None = None, search: str = "", limit: int = 50, offset: int = 0
) -> list[Entity]:
    pattern = f"(n:{check_label(label)})" if label else "(n)"
    where = "WHERE toLower(n.name) CONTAINS toLower($q) OR toLower(n.key) CONTAINS toLower($q) " if search else ""
    rows = graph.run(
        f"MATCH {pattern} {where}RETURN label(n), properties(n) ORDER BY n.name SKIP $skip LIMIT $limit",
        {"q": search, "skip": int(offset), "limit": int(limit)},
        columns=("l", "p"),
    )
    return [Entity(label=lbl, properties=props) for lbl, props in rows]


def label_counts(graph: Graph) -> dict[str, int]:
    rows = graph.run("MATCH (n) RETURN label(n), count(*)", columns=("l", "c"))
    return {str(lbl): int(count) for lbl, count in rows}
