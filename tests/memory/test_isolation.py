"""Another workspace's graph and vectors are never returned."""

from __future__ import annotations

from typing import Any

import pytest

from apps.memory import graph as g
from apps.memory import selectors, services
from apps.memory.context import context_for_subject
from apps.memory.demo import DEMO_SUBJECT, seed_demo_memory
from apps.memory.models import Chunk, Fact
from apps.tenants.access import workspace_schema

pytestmark = pytest.mark.django_db


def test_each_workspace_reads_only_its_own_memory(acme: Any, globex: Any, local_embedder: Any) -> None:
    with workspace_schema(acme):
        seed_demo_memory(acme, {})
        services.document_ingest(title="acme secret", text="The Acme launch code name is Bluebird.")
        acme_graph = g.Graph.current()
        assert selectors.memory_search(query="launch code name", k=1)[0].title == "acme secret"
    with workspace_schema(globex):
        globex_graph = g.Graph.current()
        assert globex_graph.name == globex.graph_name != acme_graph.name
        assert Chunk.objects.count() == 0 and Fact.objects.count() == 0
        assert selectors.memory_search(query="launch code name Bluebird", k=10, hybrid=True) == []
        assert g.entity_find(globex_graph, label="Person", key=DEMO_SUBJECT) is None
        assert selectors.entity_list(search="Sarah") == []
        context = context_for_subject(subject=DEMO_SUBJECT, token_budget=200)
        assert context.entity is None and "CTO" not in context.text and "Bluebird" not in context.text
        services.document_ingest(title="globex note", text="Globex launch code name is Nightingale.")
        assert [hit.title for hit in selectors.memory_search(query="launch code name", k=10)] == ["globex note"]
    with workspace_schema(acme):
        titles = {hit.title for hit in selectors.memory_search(query="launch code name", k=10)}
        assert "globex note" not in titles
