from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.memory.embedders import get_embedder
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


@pytest.fixture(scope="session")
def local_embedder() -> Any:
    """The real all-MiniLM-L6-v2, loaded once per test session (it takes seconds)."""
    embedder = get_embedder("local-minilm")
    embedder.embed_query("warm up")
    return embedder


@pytest.fixture
def in_acme(db: None, acme: Workspace, local_embedder: Any) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


@pytest.fixture
def in_globex(db: None, globex: Workspace, local_embedder: Any) -> Iterator[Workspace]:
    with workspace_schema(globex):
        yield globex
