"""Context assembly for a mission's subject, on the demo data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from apps.memory import graph as g
from apps.memory.context import context_for_subject, estimate_tokens
from apps.memory.demo import DEMO_SUBJECT, seed_demo_memory
from apps.memory.models import Document, Fact
from apps.memory.tools import memory_context, memory_search, memory_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_memory(in_acme: Any) -> Any:
    seed_demo_memory(in_acme, {})
    return in_acme


def test_the_demo_subject_is_known_as_the_support_mission_needs(demo_memory: Any) -> None:
    context = context_for_subject(subject=DEMO_SUBJECT, token_budget=400, query="Salesforce contacts are duplicated")
    text = context.text
    assert "Sarah Chen <sarah.chen@acme.example> is the CTO of Acme." in text
    assert "Acme is on the Pro plan." in text
    assert "Sarah's last three tickets were about the Salesforce integration" in text
    assert text.index("CTO") < text.index("Pro plan") < text.index("last three tickets")
    assert "T-1021" not in text  # the older billing ticket is not among the last three
    assert "Duplicates appear when the import matches on name instead of email" in text  # the relevant KB chunk
    assert context.tokens <= 400 and context.entity and context.entity["label"] == "Person"


def test_the_subject_can_be_a_display_address_or_a_label_key_or_a_name(demo_memory: Any) -> None:
    for subject in ("Sarah Chen <Sarah.Chen@acme.example>", f"Person:{DEMO_SUBJECT}", "Sarah Chen"):
        assert "CTO of Acme" in context_for_subject(subject=subject, token_budget=200).text


def test_the_budget_is_respected_most_important_first(demo_memory: Any) -> None:
    small = context_for_subject(subject=DEMO_SUBJECT, token_budget=40)
    assert small.tokens <= 40 and small.truncated
    assert small.text.startswith("Sarah Chen <sarah.chen@acme.example> is the CTO of Acme.")
    assert "last three tickets" not in small.text  # did not fit; later, shorter lines may
    tiny = context_for_subject(subject=DEMO_SUBJECT, token_budget=20)
    assert estimate_tokens(tiny.text) <= 21 and tiny.text.startswith("Sarah Chen")


def test_the_context_reads_the_graph_as_it_was(demo_memory: Any) -> None:
    before = context_for_subject(subject=DEMO_SUBJECT, token_budget=300, at=datetime(2025, 1, 20, tzinfo=UTC))
    assert "Sarah's last ticket was about billing" in before.text
    assert "CTO" not in before.text  # the role was recorded when the demo was seeded, later


def test_an_unknown_subject_says_so(in_acme: Any) -> None:
    context = context_for_subject(subject="nobody@nowhere.example", token_budget=100)
    assert context.entity is None and "Nothing is remembered about nobody@nowhere.example" in context.text


def test_the_demo_seeder_is_idempotent(demo_memory: Any) -> None:
    graph = g.Graph.current()
    counts = (
        Fact.objects.count(),
        Document.objects.count(),
        g.label_counts(graph),
        graph.run("MATCH ()-[r]->() RETURN count(r)")[0][0],
    )
    seed_demo_memory(demo_memory, {})
    assert counts == (
        Fact.objects.count(),
        Document.objects.count(),
        g.label_counts(graph),
        graph.run("MATCH ()-[r]->() RETURN count(r)")[0][0],
    )


def test_runtime_tools_return_json_ready_results(demo_memory: Any) -> None:
    import json
    import uuid

    crew = uuid.uuid4()
    written = memory_write(
        text="Sarah asked for a call on Friday.",
        subject={"label": "Person", "key": DEMO_SUBJECT},
        crew_id=crew,
        agent_id=uuid.uuid4(),
        source="agent",
    )
    assert written["status"] == "active" and written["relationship_uid"] is None
    hits = memory_search(query="When does Sarah want a call?", k=3, crew_id=crew)
    assert hits[0]["text"] == "Sarah asked for a call on Friday." and hits[0]["fact_id"] == written["fact_id"]
    context = memory_context(subject=DEMO_SUBJECT, token_budget=300)
    json.dumps([hits, context])
    assert context["entity"]["key"] == DEMO_SUBJECT
