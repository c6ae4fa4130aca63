"""A memory write that touches both stores commits with its journal entry, or not at all."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from apps.audit.models import JournalEntry
from apps.memory import graph as g
from apps.memory import services
from apps.memory.models import Chunk, Document, Fact
from apps.tenants.access import workspace_schema


class Boom(RuntimeError):
    pass


def _explode_after_graph_write(key: str) -> Any:
    def journal_append(**kwargs: Any) -> None:
        # The graph write has happened, in this very transaction...
        assert g.entity_find(g.Graph.current(), label="Person", key=key) is not None
        raise Boom("journal unavailable")

    return journal_append


def _assert_nothing_of(key: str, text: str) -> None:
    graph = g.Graph.current()
    assert g.entity_find(graph, label="Person", key=key) is None
    assert graph.run("MATCH (p:Person {key: $key})-[r]->() RETURN count(r)", {"key": key})[0][0] == 0
    assert not Fact.objects.filter(text=text).exists()
    assert not Document.objects.filter(title=text[:120]).exists()
    assert not Chunk.objects.filter(text=text).exists()
    assert not JournalEntry.objects.filter(kind="memory.written", payload__text=text).exists()


@pytest.mark.django_db
def test_failure_after_the_graph_write_leaves_neither_store_changed(in_acme: Any, monkeypatch: Any) -> None:
    key = f"atomic-{uuid.uuid4().hex[:8]}@acme.example"
    text = f"{key} is the COO of Acme."
    monkeypatch.setattr(services, "journal_append", _explode_after_graph_write(key))
    with pytest.raises(Boom):
        services.memory_write_fact(
            text=text,
            subject={"label": "Person", "key": key},
            relationship="ROLE",
            object={"label": "Company", "key": "acme.example"},
            properties={"title": "COO"},
        )
    _assert_nothing_of(key, text)


def test_a_failed_write_in_its_own_committed_transaction_leaves_nothing(
    committed_db: None, acme: Any, local_embedder: Any, monkeypatch: Any
) -> None:
    """The same, with real commits (no test transaction around it): what another connection
    would see after the failure."""
    key = f"atomic-{uuid.uuid4().hex[:8]}@acme.example"
    text = f"{key} is the CEO of Acme."
    monkeypatch.setattr(services, "journal_append", _explode_after_graph_write(key))
    with workspace_schema(acme):
        assert connection.get_autocommit()
        with pytest.raises(Boom):
            services.memory_write_fact(
                text=text,
                subject={"label": "Person", "key": key},
                relationship="ROLE",
                object={"label": "Company", "key": "acme.example"},
                properties={"title": "CEO"},
            )
        _assert_nothing_of(key, text)


@pytest.mark.django_db
def test_a_failing_graph_write_leaves_no_sentence_either(in_acme: Any, monkeypatch: Any) -> None:
    text = "Sarah Chen works at a company whose label cannot be written."

    def broken_open(*args: Any, **kwargs: Any) -> Any:
        raise Boom("graph unavailable")

    monkeypatch.setattr(g, "relationship_open", broken_open)
    with pytest.raises(Boom):
        services.memory_write_fact(
            text=text,
            subject={"label": "Person", "key": "s@acme.example"},
            relationship="WORKS_AT",
            object={"label": "Company", "key": "acme.example"},
        )
    assert not Fact.objects.filter(text=text).exists() and not Chunk.objects.filter(text=text).exists()
    assert g.entity_find(g.Graph.current(), label="Person", key="s@acme.example") is None
