"""Graph memory in the workspace's AGE graph: entities, relationships, validity, hostile values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.memory import graph as g
from apps.memory import selectors, services
from apps.memory.models import Document, Fact, FactStatus

pytestmark = pytest.mark.django_db

SARAH = {"label": "Person", "key": "sarah@acme.example", "name": "Sarah Chen"}
ACME = {"label": "Company", "key": "acme.example", "name": "Acme"}
GLOBEX = {"label": "Company", "key": "globex.example", "name": "Globex"}

HOSTILE = [
    "O'Brien",
    'say "hi"',
    "$$ MATCH (n) DETACH DELETE n $$",
    "'); DROP TABLE memory_fact; --",
    "}) MATCH (m) DETACH DELETE m //",
    "MERGE (x:Pwned) SET x.owned = true RETURN x",
    "$key $params %s %(name)s {0}",
    "back\\slash \\' \\\" \\\\",
    "ünïcödé 😀 名前 עברית",
    "line\nbreak\ttab",
    "::vertex",
]


def vertex_count(graph: g.Graph) -> int:
    return int(graph.run("MATCH (n) RETURN count(n)")[0][0])


def test_entities_and_relationships_round_trip(in_acme: Any) -> None:
    sarah = services.entity_upsert(label="Person", key=SARAH["key"], name="Sarah Chen", properties={"city": "Lyon"})
    assert sarah.label == "Person" and sarah.properties["city"] == "Lyon" and sarah.uid
    again = services.entity_upsert(label="Person", key=SARAH["key"], properties={"city": "Paris"})
    assert again.uid == sarah.uid and again.properties["city"] == "Paris" and again.name == "Sarah Chen"
    written = services.relationship_write(subject=SARAH, relationship="WORKS_AT", object=ACME)
    assert written.created
    relationships = selectors.entity_relationships(entity=selectors.entity_get(uid=sarah.uid))
    assert [(r.type, r.target.key) for r in relationships] == [("WORKS_AT", "acme.example")]
    acme = selectors.entity_get(label="Company", key="acme.example")
    assert [r.source.key for r in selectors.entity_relationships(entity=acme)] == [SARAH["key"]]
    assert JournalEntry.objects.filter(kind="memory.written", payload__what="relationship").exists()


def test_hostile_values_are_stored_and_read_back_intact(in_acme: Any) -> None:
    graph = g.Graph.current()
    before = vertex_count(graph)
    for index, value in enumerate(HOSTILE):
        entity = services.entity_upsert(label="Person", key=value, name=value, properties={"note": value, "n": index})
        assert entity.key == value and entity.name == value and entity.properties["note"] == value
        found = g.entity_find(graph, label="Person", key=value)
        assert found is not None and found.properties["note"] == value and found.uid == entity.uid
        fact = services.memory_write_fact(
            text=f"{value} works at {value}",
            subject={"label": "Person", "key": value},
            relationship="ROLE",
            object={"label": "Company", "key": value, "name": value},
            properties={"title": value},
        )
        relationship = g.relationship_get(graph, uid=str(fact.relationship_uid))
        assert relationship is not None and relationship.properties["title"] == value
        assert relationship.source.key == value and relationship.target.name == value
        assert Fact.objects.get(pk=fact.pk).text == f"{value} works at {value}"
    # Nothing was executed from a value: exactly the entities written exist, nothing deleted.
    assert vertex_count(graph) == before + 2 * len(HOSTILE)
    assert g.entity_list(graph, label="Person", search="O'Brien")[0].key == "O'Brien"
    assert graph.run("MATCH (x) WHERE x.owned = true RETURN count(x)")[0][0] == 0


def test_identifiers_that_cannot_be_parameters_are_checked(in_acme: Any) -> None:
    with pytest.raises(ValidationFailed):
        services.entity_upsert(label="Person) DETACH DELETE (n", key="x")
    with pytest.raises(ValidationFailed):
        services.entity_upsert(label="person", key="x")  # not PascalCase
    with pytest.raises(ValidationFailed) as unknown_label:
        services.entity_upsert(label="Vendor", key="x")  # well-formed, not in the workspace's vocabulary
    assert unknown_label.value.code == "unknown_entity_type"
    with pytest.raises(ValidationFailed):
        services.relationship_write(subject=SARAH, relationship="WORKS_AT]->() DETACH DELETE (", object=ACME)
    with pytest.raises(ValidationFailed) as unknown_type:
        services.relationship_write(subject=SARAH, relationship="FRIEND_OF", object=ACME)
    assert unknown_type.value.code == "unknown_relationship_type"
    with pytest.raises(ValidationFailed):
        services.entity_upsert(label="Person", key="x", properties={"name = 'x', n.admin": True})
    with pytest.raises(ValidationFailed):
        services.entity_upsert(label="Person", key="x", properties={"uid": "forged"})
    with pytest.raises(ValueError):
        g.Graph.current().run("RETURN 1 $$ ; SELECT 1")
    with pytest.raises(ValidationFailed):
        g.Graph("g_acme'; DROP SCHEMA g_acme CASCADE; --")


def test_workspace_added_types_extend_the_vocabulary(in_acme: Any) -> None:
    services.entity_type_add(name="Vendor", description="Suppliers")
    services.relationship_type_add(name="SUPPLIES", cardinality="many")
    written = services.relationship_write(
        subject={"label": "Vendor", "key": "parts-inc", "name": "Parts Inc"}, relationship="SUPPLIES", object=ACME
    )
    assert written.relationship.type == "SUPPLIES"
    assert "Vendor" in services.entity_labels()
    with pytest.raises(Conflict):
        services.entity_type_add(name="Person")


def test_a_new_single_valued_relationship_closes_the_old_one_which_is_kept(in_acme: Any) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1 = datetime(2025, 6, 1, tzinfo=UTC)
    first = services.memory_write_fact(
        text="Sarah Chen works at Acme.", subject=SARAH, relationship="WORKS_AT", object=ACME, valid_from=t0
    )
    second = services.memory_write_fact(
        text="Sarah Chen moved to Globex.", subject=SARAH, relationship="WORKS_AT", object=GLOBEX, valid_from=t1
    )
    graph = g.Graph.current()
    old = g.relationship_get(graph, uid=str(first.relationship_uid))
    new = g.relationship_get(graph, uid=str(second.relationship_uid))
    assert old is not None and new is not None
    assert old.valid_from == t0 and old.valid_to == t1 and not old.is_current
    assert new.valid_from == t1 and new.is_current
    first.refresh_from_db()
    assert first.status == FactStatus.SUPERSEDED and first.valid_to == t1 and first.superseded_by_id == second.id
    # The sentence of the outdated fact is kept but no longer found.
    assert Document.objects.get(pk=first.document_id).is_active is False
    texts = [hit.text for hit in selectors.memory_search(query="Where does Sarah Chen work?", k=5)]
    assert "Sarah Chen moved to Globex." in texts and "Sarah Chen works at Acme." not in texts
    # History is a query away.
    _, then = g.neighborhood(graph, label="Person", key=SARAH["key"], at=t0 + timedelta(days=30))
    _, now = g.neighborhood(graph, label="Person", key=SARAH["key"])
    assert [hop.node.key for hop in then if hop.via is None] == ["acme.example"]
    assert [hop.node.key for hop in now if hop.via is None] == ["globex.example"]
    all_rels = g.relationships_of(
        graph, uid=selectors.entity_get(label="Person", key=SARAH["key"]).uid, include_closed=True
    )
    assert {r.target.key for r in all_rels} == {"acme.example", "globex.example"}


def test_many_valued_relationships_accumulate(in_acme: Any) -> None:
    for key in ("T-1", "T-2"):
        services.relationship_write(subject=SARAH, relationship="OPENED", object={"label": "Ticket", "key": key})
    _, hops = g.neighborhood(g.Graph.current(), label="Person", key=SARAH["key"])
    assert sorted(hop.node.key for hop in hops) == ["T-1", "T-2"]


def test_writing_the_same_fact_twice_changes_nothing(in_acme: Any) -> None:
    kwargs = {
        "text": "Acme is on the Pro plan.",
        "subject": ACME,
        "relationship": "ON_PLAN",
        "object": {"label": "Plan", "key": "pro", "name": "Pro"},
    }
    first = services.memory_write_fact(**kwargs)
    entries = JournalEntry.objects.count()
    second = services.memory_write_fact(**kwargs)
    assert first.pk == second.pk and JournalEntry.objects.count() == entries
    edges = g.Graph.current().run("MATCH (:Company {key: $k})-[r:ON_PLAN]->() RETURN count(r)", {"k": ACME["key"]})
    assert edges[0][0] == 1


def test_retiring_a_fact_closes_its_relationship_and_hides_its_sentence(in_acme: Any) -> None:
    fact = services.memory_write_fact(
        text="Sarah Chen is the CTO of Acme.",
        subject=SARAH,
        relationship="ROLE",
        object=ACME,
        properties={"title": "CTO"},
    )
    retired = services.fact_retire(fact=fact, reason="left the company")
    assert retired.status == FactStatus.RETIRED and retired.valid_to is not None
    edge = g.relationship_get(g.Graph.current(), uid=str(fact.relationship_uid))
    assert edge is not None and edge.valid_to is not None  # closed, not deleted
    assert all(hit.text != fact.text for hit in selectors.memory_search(query="Who is the CTO of Acme?", k=5))
    entry = JournalEntry.objects.filter(kind="memory.retired").latest("seq")
    assert entry.payload == {
        "what": "fact",
        "id": str(fact.id),
        "text": fact.text,
        "reason": "left the company",
        "closed_relationships": [str(fact.relationship_uid)],
    }
    with pytest.raises(Conflict):
        services.fact_retire(fact=fact)


def test_correcting_a_fact_replaces_it_in_both_stores(in_acme: Any) -> None:
    fact = services.memory_write_fact(
        text="Sarah Chen is the CFO of Acme.",
        subject=SARAH,
        relationship="ROLE",
        object=ACME,
        properties={"title": "CFO"},
    )
    new = services.fact_correct(
        fact=fact, text="Sarah Chen is the CTO of Acme.", properties={"title": "CTO"}, reason="typo"
    )
    fact.refresh_from_db()
    assert fact.status == FactStatus.CORRECTED and fact.superseded_by_id == new.id
    graph = g.Graph.current()
    assert g.relationship_get(graph, uid=str(fact.relationship_uid)).valid_to is not None  # type: ignore[union-attr]
    current = g.relationship_get(graph, uid=str(new.relationship_uid))
    assert current is not None and current.properties["title"] == "CTO" and current.is_current
    assert selectors.memory_search(query="Who is the CTO of Acme?", k=1)[0].text == "Sarah Chen is the CTO of Acme."
    entry = JournalEntry.objects.filter(kind="memory.corrected").latest("seq")
    assert entry.payload["previous_text"] == "Sarah Chen is the CFO of Acme." and entry.payload["new_fact_id"] == str(
        new.id
    )


def test_closing_a_relationship_retires_the_facts_stating_it(in_acme: Any) -> None:
    fact = services.memory_write_fact(
        text="Acme uses HubSpot.",
        subject=ACME,
        relationship="USES",
        object={"label": "Project", "key": "hubspot", "name": "HubSpot"},
    )
    services.relationship_close(uid=str(fact.relationship_uid), reason="migrated away")
    fact.refresh_from_db()
    assert fact.status == FactStatus.RETIRED
    with pytest.raises(NotFound):
        services.relationship_close(uid=str(fact.relationship_uid))


def test_a_relationship_to_a_missing_object_is_created_with_it(in_acme: Any) -> None:
    services.relationship_write(
        subject=SARAH, relationship="WORKS_AT", object={"label": "Company", "key": "new.example"}
    )
    assert selectors.entity_get(label="Company", key="new.example").name == "new.example"


def test_concurrent_first_writes_of_one_entity_create_it_once(committed_db: None, acme: Any) -> None:
    """Two writers race to create the same new person; the advisory lock makes one wait, so
    the second sees the first's entity instead of creating a duplicate."""
    import threading
    import uuid

    from django.db import connection

    from apps.tenants.access import workspace_schema

    key = f"race-{uuid.uuid4().hex[:10]}@acme.example"
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with workspace_schema(acme):
                barrier.wait(timeout=10)
                services.entity_upsert(label="Person", key=key, name="Racer")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with workspace_schema(acme):
        graph = g.Graph.current()
        assert graph.run("MATCH (n:Person {key: $key}) RETURN count(n)", {"key": key})[0][0] == 1
