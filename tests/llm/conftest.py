from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.llm import routing
from apps.llm.catalog.selectors import catalog_invalidate
from apps.llm.devservers import FakeAnthropicServer, FakeOpenAIServer


@pytest.fixture(autouse=True)
def _fresh_llm_caches() -> Iterator[None]:
    catalog_invalidate()
    routing._configs.clear()
    yield
    catalog_invalidate()
    routing._configs.clear()


@pytest.fixture
def fake_anthropic(settings: Any) -> Iterator[FakeAnthropicServer]:
    """A local fake Messages API; the gateway's Anthropic provider points at it."""
    with FakeAnthropicServer() as server:
        settings.LLM_ANTHROPIC_API_KEY = "sk-ant-test-key"
        settings.LLM_ANTHROPIC_BASE_URL = server.url
        yield server


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
