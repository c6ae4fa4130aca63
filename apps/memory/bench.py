"""The memory benchmark (``manage.py bench_memory``), in a dedicated workspace.

* ``embed_per_s``: the real local model embedding distinct support sentences on the CPU.
* A corpus of synthetic but realistic chunks: each is three sentences about one support topic
  for one customer; its vector is the weighted mix of the real embeddings of its sentences
  plus a little noise (deterministic, seeded), so the corpus has the cluster structure of
  real text embeddings without embedding 100,000 texts on a CPU. Loaded with binary COPY,
  the HNSW index built afterwards, as a restore would.
* ``knn_*``: top-10 with a filter (metadata ``kind = ticket`` and a crew's visibility) through
  the same ``chunk_search`` the API uses, timed on a second pass over the queries (steady
  state); ``recall_at_10`` against exact search (index scans off) for the same queries and
  filter.
* ``graph_2hop_*``: the graph half of context assembly (resolve a person, read two hops:
  company, role, plan, tickets and their topics, then phrase it) over a graph of more than
  10,000 entities.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection

from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision

from . import graph as g
from .context import graph_context
from .embedders import get_embedder
from .models import DEFAULT_DIMENSIONS, HNSW_EF_CONSTRUCTION, HNSW_M, Chunk, Document
from .selectors import chunk_search

BENCH_SLUG = "bench-memory"
CORPUS_SOURCE = "bench:corpus:v1"
Log = Callable[[str], None]

TOPICS: dict[str, list[str]] = {
    "salesforce": [
        "The Salesforce sync stopped after the nightly job",
        "Custom fields are missing from the Salesforce import",
        "Salesforce contacts are duplicated after the sync",
        "The Salesforce OAuth token expires every day",
        "Opportunities from Salesforce show the wrong owner",
    ],
    "billing": [
        "The invoice shows the wrong number of seats",
        "We were charged twice this month",
        "How do we switch from monthly to annual billing",
        "The VAT number is missing on our invoice",
        "Our credit card payment was declined",
    ],
    "sso": [
        "Users cannot log in with Okta single sign-on",
        "The SAML assertion is rejected as expired",
        "New employees are not provisioned through SCIM",
        "SSO login loops back to the sign-in page",
        "We need to enforce SSO for all members",
    ],
    "api": [
        "The API returns 429 too many requests",
        "Webhook deliveries are retried too often",
        "The REST API pagination skips records",
        "Our API key stopped working after rotation",
        "The export endpoint times out for large accounts",
    ],
    "export": [
        "The CSV export has broken accents",
        "Scheduled reports arrive empty",
        "The dashboard export to PDF cuts off charts",
        "We need an export of all tickets for an audit",
        "Excel cannot open the exported file",
    ],
    "mobile": [
        "The iOS app crashes on launch",
        "Push notifications stopped on Android",
        "The mobile app does not show attachments",
        "Offline mode loses drafts",
        "Dark mode makes the text unreadable",
    ],
    "permissions": [
        "A viewer can see confidential projects",
        "Admins cannot remove a former employee",
        "Guest users should not see the billing page",
        "Role changes take an hour to apply",
        "We need a read-only role for auditors",
    ],
    "performance": [
        "The dashboard takes thirty seconds to load",
        "Search results are slow for large workspaces",
        "The app is slow every morning at nine",
        "Uploading attachments over 10 MB fails",
        "The timeline freezes when scrolling",
    ],
}
ASIDES = [
    "since yesterday",
    "for about half of our team",
    "after the latest update",
    "only in the Europe region",
    "for our largest customer",
    "again, as reported last month",
    "when using Chrome",
    "during the quarterly close",
]
COMPANIES = [
    f"{a} {b}"
    for a in (
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Vandelay",
        "Stark",
        "Wayne",
        "Tyrell",
        "Soylent",
        "Cyberdyne",
        "Wonka",
        "Gringotts",
        "Oscorp",
        "Aperture",
    )
    for b in ("Corp", "Labs", "Group", "Systems", "Health", "Retail", "Logistics")
]
KINDS = ["ticket", "ticket", "kb", "chat", "email"]  # ticket is 40%: the benchmark's filter


def _sentences() -> list[tuple[str, str]]:
    """(topic, sentence): every base sentence with every aside, 320 distinct sentences."""
    return [(topic, f"{base} {aside}.") for topic, bases in TOPICS.items() for base in bases for aside in ASIDES]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_workspace(log: Log) -> Workspace:
    workspace = Workspace.objects.filter(slug=BENCH_SLUG).first()
    if workspace is None:
        log(f"provisioning workspace {BENCH_SLUG}")
        workspace = workspace_provision(name="Memory benchmark", slug=BENCH_SLUG).workspace
    return workspace


def measure_embedding(texts: list[str], log: Log) -> tuple[np.ndarray, float]:
    embedder = get_embedder("local-minilm")
    started = time.perf_counter()
    embedder.embed_query("load the model")
    log(f"local model loaded in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    seconds = time.perf_counter() - started
    rate = len(texts) / seconds
    log(f"embedded {len(texts)} sentences in {seconds:.1f}s: {rate:.0f}/s")
    return vectors, rate


def _dsn() -> str:
    db = settings.DATABASES["default"]
    parts = {
        "dbname": db["NAME"],
        "user": db.get("USER", ""),
        "password": db.get("PASSWORD", ""),
        "host": db.get("HOST", ""),
        "port": db.get("PORT", ""),
    }
    return " ".join(f"{k}='{v!s}'" for k, v in parts.items() if v)


def load_corpus(
    workspace: Workspace,
    *,
    chunks: int,
    base: np.ndarray,
    sentences: list[tuple[str, str]],
    rebuild: bool,
    log: Log,
    seed: int = 7,
) -> int:
    """Bulk-load ``chunks`` chunks (10 per document) unless they are already there."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    embedder_identity = get_embedder("local-minilm").identity
    with workspace_schema(workspace):
        present = Chunk.objects.filter(document__source=CORPUS_SOURCE).count()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                [workspace.schema_name, f"memory_chunk_hnsw_{DEFAULT_DIMENSIONS}"],
            )
            indexed = cursor.fetchone() is not None
        if present == chunks and indexed and not rebuild:
            log(f"corpus of {present} chunks already loaded")
            return present
    schema = workspace.schema_name
    rng = np.random.default_rng(seed)
    by_topic: dict[str, list[int]] = {}
    for index, (topic, _) in enumerate(sentences):
        by_topic.setdefault(topic, []).append(index)
    topics = sorted(by_topic)
    crews = [uuid.UUID(int=rng.integers(1, 2**63).item()) for _ in range(4)]
    started = time.perf_counter()
    with psycopg.connect(_dsn(), autocommit=False) as conn:
        register_vector(conn)
        cur = conn.cursor()
        cur.execute(f'SET search_path TO "{schema}", public')
        cur.execute("SET maintenance_work_mem = '1GB'")
        # Parallel HNSW builds use dynamic shared memory, which a container's small /dev/shm
        # cannot hold at this size; a serial build uses local memory.
        cur.execute("SET max_parallel_maintenance_workers = 0")
        log("removing a previous corpus and the HNSW index (it is built after the load)")
        cur.execute(
            "DELETE FROM memory_chunk WHERE document_id IN (SELECT id FROM memory_document WHERE source = %s)",
            [CORPUS_SOURCE],
        )
        cur.execute("DELETE FROM memory_document WHERE source = %s", [CORPUS_SOURCE])
        cur.execute(f"DROP INDEX IF EXISTS memory_chunk_hnsw_{DEFAULT_DIMENSIONS}")
        documents = chunks // 10
        now = datetime.now(UTC)
        doc_ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(documents)]
        doc_meta = []
        with cur.copy(
            "COPY memory_document (id, title, source, source_type, content_sha256, metadata, crew_id, char_count, "
            "chunk_count, embedder, is_active, created_at, created_by) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
                    "uuid",
                    "varchar",
                    "varchar",
                    "varchar",
                    "varchar",
                    "jsonb",
                    "uuid",
                    "int4",
                    "int4",
                    "varchar",
                    "bool",
                    "timestamptz",
                    "varchar",
                ]
            )
            for number, doc_id in enumerate(doc_ids):
                topic = topics[int(rng.integers(len(topics)))]
                company = COMPANIES[int(rng.integers(len(COMPANIES)))]
                kind = KINDS[int(rng.integers(len(KINDS)))]
                crew = crews[int(rng.integers(len(crews)))] if rng.random() < 0.8 else None
                meta = {"kind": kind, "topic": topic, "customer": company}
                doc_meta.append((topic, company, kind, crew, meta))
                copy.write_row(
                    (
                        doc_id,
                        f"{kind} {number}: {topic} at {company}",
                        CORPUS_SOURCE,
                        "text",
                        hashlib.sha256(doc_id.bytes).hexdigest(),
                        Jsonb(meta),
                        crew,
                        0,
                        10,
                        embedder_identity,
                        True,
                        now - timedelta(minutes=number),
                        "bench",
                    )
                )
        log(f"copied {documents} documents")
        with cur.copy(
            "COPY memory_chunk (document_id, ordinal, text, embedding, embedder, dimensions, metadata, crew_id, "
            "is_active, created_at) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["uuid", "int4", "text", "vector", "varchar", "int2", "jsonb", "uuid", "bool", "timestamptz"]
            )
            written = 0
            for doc_id, (topic, company, _kind, crew, meta) in zip(doc_ids, doc_meta, strict=True):
                pool = by_topic[topic]
                picks = rng.choice(pool, size=(10, 3))
                weights = rng.dirichlet([2.0, 2.0, 2.0], size=10).astype(np.float32)
                mixed = np.einsum("ij,ijk->ik", weights, base[picks]) + rng.normal(0, 0.012, (10, base.shape[1]))
                mixed = (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)
                for ordinal in range(10):
                    text = f"{company}: " + " ".join(sentences[i][1] for i in picks[ordinal])
                    copy.write_row(
                        (
                            doc_id,
                            ordinal,
                            text,
                            mixed[ordinal],
                            embedder_identity,
                            DEFAULT_DIMENSIONS,
                            Jsonb(meta),
                            crew,
                            True,
                            now,
                        )
                    )
                written += 10
                if written % 20_000 == 0:
                    log(f"copied {written}/{chunks} chunks ({time.perf_counter() - started:.0f}s)")
        conn.commit()  # Django's foreign keys are deferred: CREATE INDEX must not share their transaction
        log(f"building the HNSW index over {chunks} vectors (m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION})")
        index_started = time.perf_counter()
        cur.execute(
            f"CREATE INDEX memory_chunk_hnsw_{DEFAULT_DIMENSIONS} ON memory_chunk USING hnsw "
            f"(((embedding)::vector({DEFAULT_DIMENSIONS})) vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE dimensions = {DEFAULT_DIMENSIONS}"
        )
        log(f"index built in {time.perf_counter() - index_started:.0f}s")
        cur.execute("ANALYZE memory_chunk")
        cur.execute("ANALYZE memory_document")
        conn.commit()
    log(f"corpus loaded in {time.perf_counter() - started:.0f}s")
    return chunks


def _queries(base: np.ndarray, sentences: list[tuple[str, str]], count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    by_topic: dict[str, list[int]] = {}
    for index, (topic, _) in enumerate(sentences):
        by_topic.setdefault(topic, []).append(index)
    queries = []
    for _ in range(count):
        pool = by_topic[sorted(by_topic)[int(rng.integers(len(by_topic)))]]
        picks = rng.choice(pool, size=2)
        vector = base[picks].mean(axis=0) + rng.normal(0, 0.012, base.shape[1])
        queries.append((vector / np.linalg.norm(vector)).astype(np.float32))
    return queries


def measure_knn(
    workspace: Workspace, *, base: np.ndarray, sentences: list[tuple[str, str]], queries: int, log: Log
) -> dict[str, float]:
    identity = get_embedder("local-minilm").identity
    with workspace_schema(workspace):
        crews = list(
            Document.objects.filter(source=CORPUS_SOURCE, crew_id__isnull=False)
            .values_list("crew_id", flat=True)
            .distinct()[:4]
        )
        vectors = _queries(base, sentences, queries, seed=11)
        rng = random.Random(5)
        args = [(vector.tolist(), rng.choice(crews) if crews else None) for vector in vectors]

        def search(vector: list[float], crew: Any, exact: bool) -> list[int]:
            return chunk_search(  # type: ignore[return-value]
                vector=vector,
                embedder_identity=identity,
                dimensions=DEFAULT_DIMENSIONS,
                k=10,
                crew_id=crew,
                filters={"kind": "ticket"},
                exact=exact,
                ids_only=True,
            )

        # One warm-up pass over the same queries: steady state (index pages in the buffer
        # cache), not the first touches after a load or a restart.
        for vector, crew in args:
            search(vector, crew, False)
        timings, approximate = [], []
        for vector, crew in args:
            started = time.perf_counter()
            approximate.append(search(vector, crew, False))
            timings.append((time.perf_counter() - started) * 1000)
        log(f"kNN: {len(timings)} filtered top-10 queries, p50 {statistics.median(timings):.2f} ms")
        recalls = []
        for (vector, crew), found in zip(args, approximate, strict=True):
            truth = search(vector, crew, True)
            recalls.append(len(set(found) & set(truth)) / max(1, len(truth)))
        log(f"recall@10 against exact search: {statistics.mean(recalls):.4f}")
    return {
        "knn_p50_ms": round(statistics.median(timings), 3),
        "knn_p95_ms": round(_percentile(timings, 95), 3),
        "recall_at_10": round(statistics.mean(recalls), 4),
    }


GRAPH_MARKER_KEY = "bench-graph-v1"


def load_graph(workspace: Workspace, *, people: int, log: Log, rebuild: bool = False, seed: int = 3) -> int:
    """Companies, plans, people with roles, tickets and topics; loaded with parameterised
    UNWIND batches through the same executor as everything else."""
    with workspace_schema(workspace):
        graph = g.Graph.current()
        graph.ensure_labels(vertices=g.BUILTIN_ENTITY_LABELS, edges=list(g.BUILTIN_RELATIONSHIPS))
        marker = f"{GRAPH_MARKER_KEY}-{people}"
        if not rebuild and g.entity_find(graph, label="Project", key=marker) is not None:
            counts = g.label_counts(graph)
            log(f"graph already loaded: {counts}")
            return sum(counts.values())
        if g.label_counts(graph):
            log("removing the previous benchmark graph")
            graph.run("MATCH (n) DETACH DELETE n")
        rng = random.Random(seed)
        started = time.perf_counter()
        at = g.iso(datetime.now(UTC))

        def batches(rows: list[dict[str, Any]], size: int = 2000) -> Any:
            for start in range(0, len(rows), size):
                yield rows[start : start + size]

        def create(label: str, rows: list[dict[str, Any]]) -> None:
            for batch in batches(rows):
                graph.run(
                    f"UNWIND $rows AS row CREATE (n:{g.check_label(label)} {{uid: row.uid, key: row.key, "
                    "name: row.name, created_at: $at, updated_at: $at, subject: row.subject, "
                    "opened_at: row.opened_at})",
                    {"rows": batch, "at": at},
                )

        def link(rel: str, sl: str, tl: str, rows: list[dict[str, Any]]) -> None:
            for batch in batches(rows):
                graph.run(
                    f"UNWIND $rows AS row MATCH (a:{g.check_label(sl)} {{key: row.s}}), (b:{g.check_label(tl)} "
                    f"{{key: row.t}}) CREATE (a)-[r:{g.check_rel_type(rel)} {{uid: row.uid, valid_from: row.vf, "
                    "created_at: $at, title: row.title}]->(b)",
                    {"rows": batch, "at": at},
                )

        def uid() -> str:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))

        plans = [{"uid": uid(), "key": p.lower(), "name": p} for p in ("Starter", "Pro", "Enterprise")]
        companies = [
            {"uid": uid(), "key": f"company-{i}.example", "name": f"{COMPANIES[i % len(COMPANIES)]} {i}"}
            for i in range(max(1, people // 6))
        ]
        projects = [{"uid": uid(), "key": f"topic-{topic}", "name": topic.title()} for topic in TOPICS]
        projects.append({"uid": uid(), "key": marker, "name": "benchmark marker"})
        persons = [
            {"uid": uid(), "key": f"person{i}@company-{i % len(companies)}.example", "name": f"Person {i}"}
            for i in range(people)
        ]
        tickets: list[dict[str, Any]] = []
        opened: list[dict[str, Any]] = []
        about: list[dict[str, Any]] = []
        day0 = datetime(2025, 1, 1, tzinfo=UTC)
        for person in persons:
            for _ in range(rng.randint(0, 4)):
                number = len(tickets) + 1
                when = g.iso(day0 + timedelta(hours=rng.randint(0, 24 * 365)))
                topic = rng.choice(list(TOPICS))
                tickets.append(
                    {
                        "uid": uid(),
                        "key": f"T-{number}",
                        "name": f"T-{number}",
                        "subject": rng.choice(TOPICS[topic]),
                        "opened_at": when,
                    }
                )
                opened.append({"uid": uid(), "s": person["key"], "t": f"T-{number}", "vf": when})
                about.append({"uid": uid(), "s": f"T-{number}", "t": f"topic-{topic}", "vf": when})
        create("Plan", plans)
        create("Company", companies)
        create("Project", projects)
        create("Person", persons)
        create("Ticket", tickets)
        log(
            f"created {len(plans) + len(companies) + len(projects) + len(persons) + len(tickets)} entities "
            f"({time.perf_counter() - started:.0f}s)"
        )
        link(
            "ON_PLAN",
            "Company",
            "Plan",
            [{"uid": uid(), "s": c["key"], "t": rng.choice(plans)["key"], "vf": at} for c in companies],
        )
        link(
            "WORKS_AT",
            "Person",
            "Company",
            [{"uid": uid(), "s": p["key"], "t": p["key"].split("@")[1], "vf": at} for p in persons],
        )
        link(
            "ROLE",
            "Person",
            "Company",
            [
                {
                    "uid": uid(),
                    "s": p["key"],
                    "t": p["key"].split("@")[1],
                    "vf": at,
                    "title": rng.choice(["CTO", "Engineer", "Support lead", "CFO", "Admin"]),
                }
                for p in persons
            ],
        )
        link("OPENED", "Person", "Ticket", opened)
        link("ABOUT", "Ticket", "Project", about)
        with connection.cursor() as cursor:
            for label in (
                "Person",
                "Company",
                "Ticket",
                "Project",
                "Plan",
                "WORKS_AT",
                "ROLE",
                "ON_PLAN",
                "OPENED",
                "ABOUT",
            ):
                cursor.execute(f'ANALYZE "{graph.name}"."{label}"')
        counts = g.label_counts(graph)
        log(f"graph loaded in {time.perf_counter() - started:.0f}s: {counts}")
        return sum(counts.values())


def measure_graph(workspace: Workspace, *, people: int, samples: int, log: Log) -> dict[str, float]:
    rng = random.Random(9)
    with workspace_schema(workspace):
        graph = g.Graph.current()
        subjects = [
            f"person{i}@company-{i % max(1, people // 6)}.example"
            for i in (rng.randrange(people) for _ in range(samples))
        ]
        for subject in subjects:  # the same warm-up pass as for kNN
            graph_context(graph, subject)
        timings = []
        for subject in subjects:
            started = time.perf_counter()
            entity, sentences = graph_context(graph, subject)
            timings.append((time.perf_counter() - started) * 1000)
            if entity is None:
                raise RuntimeError(f"benchmark person {subject} is missing from the graph")
        log(f"2-hop context: {len(timings)} people, p50 {statistics.median(timings):.2f} ms; e.g. {sentences[0][1]}")
    return {
        "graph_2hop_p50_ms": round(statistics.median(timings), 3),
        "graph_2hop_p95_ms": round(_percentile(timings, 95), 3),
    }


def run(
    *, chunks: int = 100_000, people: int = 6000, queries: int = 300, rebuild: bool = False, log: Log = print
) -> dict[str, Any]:
    workspace = bench_workspace(log)
    sentences = _sentences()
    texts = [text for _, text in sentences]
    # 640 distinct sentences: the 320 the corpus is made of, and the same said by a customer.
    customers = [f"{COMPANIES[i % len(COMPANIES)]} reports: {text}" for i, text in enumerate(texts)]
    base, embed_per_s = measure_embedding(texts + customers, log)
    base = base[: len(sentences)]
    loaded = load_corpus(workspace, chunks=chunks, base=base, sentences=sentences, rebuild=rebuild, log=log)
    knn = measure_knn(workspace, base=base, sentences=sentences, queries=queries, log=log)
    entities = load_graph(workspace, people=people, log=log, rebuild=rebuild)
    graph = measure_graph(workspace, people=people, samples=queries, log=log)
    return {
        "chunks": loaded,
        **knn,
        "ef_search": settings.MEMORY_HNSW_EF_SEARCH,
        "graph_entities": entities,
        **graph,
        "embed_per_s": round(embed_per_s, 1),
    }


def as_json(result: dict[str, Any]) -> str:
    return json.dumps(result, sort_keys=False)
