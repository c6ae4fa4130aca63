"""The embedder registry, the OpenAI-compatible client against a real local server, and
re-embedding on a switch."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator, Sequence
from http.server import HTTPServer
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.memory import selectors, services
from apps.memory.embedders import EmbeddingFailed, get_embedder, register
from apps.memory.embedders.base import _factories, _instances, identity_of
from apps.memory.embedders.local import LocalMiniLM
from apps.memory.embedders.openai_compat import OpenAICompatible
from apps.memory.models import Chunk, MemorySettings
from tests.http import JsonHandler


def hashed_vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.lower().encode()).digest() * (dims // 32 + 1)
    vector = [b - 127.5 for b in digest[:dims]]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


class EmbeddingsHandler(JsonHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        EmbeddingsHandler.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        dims = int(body.get("dimensions", 8))
        data = [
            {"object": "embedding", "index": i, "embedding": [x * 3 for x in hashed_vector(t, dims)]}
            for i, t in enumerate(body["input"])
        ]
        self.send_json(200, {"object": "list", "data": list(reversed(data)), "model": body["model"]})


@pytest.fixture
def embeddings_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    EmbeddingsHandler.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_compatible_embedder_talks_to_a_real_endpoint(embeddings_server: str) -> None:
    embedder = OpenAICompatible(base_url=embeddings_server, model="tiny", dimensions=16, api_key="sk-test")
    vectors = embedder.embed_documents(["alpha", "beta"])
    assert len(vectors) == 2 and all(len(v) == 16 for v in vectors)
    assert vectors[0] == pytest.approx(hashed_vector("alpha", 16))  # reordered by index, unit length
    request = EmbeddingsHandler.seen[0]
    assert request["path"] == "/v1/embeddings" and request["auth"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "tiny",
        "input": ["alpha", "beta"],
        "encoding_format": "float",
        "dimensions": 16,
    }
    assert embedder.identity == "openai/tiny@16"


def test_a_dimension_mismatch_is_an_error(embeddings_server: str) -> None:
    embedder = OpenAICompatible(base_url=embeddings_server, model="tiny", dimensions=16, send_dimensions=False)
    with pytest.raises(EmbeddingFailed):
        embedder.embed_query("alpha")  # the server answers 8 dimensions when not asked


def test_an_unreachable_endpoint_is_an_error() -> None:
    embedder = OpenAICompatible(base_url="http://127.0.0.1:9", model="tiny", dimensions=8, timeout=2)
    with pytest.raises(EmbeddingFailed):
        embedder.embed_query("alpha")


def test_local_model_identity_includes_its_dimension(local_embedder: Any) -> None:
    assert local_embedder.identity == identity_of("local-minilm", "all-MiniLM-L6-v2", 384)
    assert get_embedder("local-minilm") is local_embedder


class HashEmbedder:
    name = "test-hash"
    model = "sha256"
    dimensions = 8

    @property
    def identity(self) -> str:
        return identity_of(self.name, self.model, self.dimensions)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [hashed_vector(t, self.dimensions) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return hashed_vector(text, self.dimensions)


@pytest.fixture
def hash_embedder() -> Iterator[HashEmbedder]:
    register("test-hash", HashEmbedder)
    try:
        yield get_embedder("test-hash")  # type: ignore[misc]
    finally:
        _factories.pop("test-hash", None)
        _instances.pop("test-hash", None)


def test_switching_embedders_reembeds_every_chunk_with_progress(in_acme: Any, hash_embedder: HashEmbedder) -> None:
    services.document_ingest(title="one", text="Alpha bravo charlie.")
    services.memory_write_fact(text="Delta echo foxtrot.")
    before = Chunk.objects.count()
    calls: list[tuple[int, int]] = []
    result = services.memory_reembed(embedder="test-hash", batch_size=1, progress=lambda d, t: calls.append((d, t)))
    assert result.chunks == before and result.identity == "test-hash/sha256@8"
    assert calls[0] == (0, before) and calls[-1] == (before, before) and len(calls) == before + 1
    assert set(Chunk.objects.values_list("embedder", "dimensions")) == {("test-hash/sha256@8", 8)}
    assert MemorySettings.objects.get().embedder == "test-hash"
    hits = selectors.memory_search(query="Alpha bravo charlie.", k=1)  # the hash of the same text: distance 0
    assert hits[0].title == "one" and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    entry = JournalEntry.objects.filter(kind="memory.reembedded").latest("seq")
    assert entry.payload["to_embedder"] == "test-hash" and entry.payload["complete"] is True
    again = services.memory_reembed(embedder="test-hash")
    assert again.chunks == 0  # resumable: nothing left to do


def test_an_unknown_embedder_is_refused(in_acme: Any) -> None:
    from apps.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        services.memory_reembed(embedder="no-such-embedder")


def test_the_reembed_command_prints_progress(acme: Any, hash_embedder: HashEmbedder, db: None) -> None:
    from io import StringIO

    from django.core.management import call_command

    from apps.tenants.access import workspace_schema

    with workspace_schema(acme):
        services.document_ingest(title="cmd", text="Golf hotel india.")
    out = StringIO()
    call_command("memory_reembed", "test-hash", "--workspace", "acme", "--batch-size", "1", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[acme] 0/") and "(100%" in lines[-2]
    assert "local-minilm -> test-hash (test-hash/sha256@8)" in lines[-1]
    with workspace_schema(acme):
        assert set(Chunk.objects.values_list("embedder", flat=True)) == {"test-hash/sha256@8"}


class _WarmCounting:
    name, model, dimensions = "test-warm", "counting", 4
    identity = identity_of(name, model, dimensions)

    def __init__(self, fail: bool = False) -> None:
        self.warmed = 0
        self.fail = fail

    def warm(self) -> None:
        self.warmed += 1
        if self.fail:
            raise EmbeddingFailed("the model file is missing")

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [hashed_vector(t, 4) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return hashed_vector(text, 4)


@pytest.fixture
def warm_counting() -> Iterator[_WarmCounting]:
    embedder = _WarmCounting()
    register("test-warm", lambda: embedder)
    yield embedder
    _factories.pop("test-warm", None)
    _instances.pop("test-warm", None)


def test_the_default_embedder_is_loaded_when_a_process_starts(
    warm_counting: _WarmCounting, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The server and the worker call embedder_preload(); the test settings turn it off."""
    settings.MEMORY_DEFAULT_EMBEDDER = "test-warm"
    settings.MEMORY_PRELOAD_EMBEDDER = False
    assert services.embedder_preload() is None
    assert warm_counting.warmed == 0
    settings.MEMORY_PRELOAD_EMBEDDER = True
    thread = services.embedder_preload()
    assert thread is not None
    thread.join(timeout=10)
    assert warm_counting.warmed == 1
    # A failure is logged, not raised: the first use reports it the usual way.
    warm_counting.fail = True
    thread = services.embedder_preload()
    assert thread is not None
    thread.join(timeout=10)
    assert warm_counting.warmed == 2
    assert "preloading embedder test-warm failed" in caplog.text


def test_warming_the_local_embedder_loads_its_model() -> None:
    local = LocalMiniLM()
    assert local._model is None  # lazily, on first use otherwise
    local.warm()
    assert local._model is not None
    assert len(local.embed_query("refund policy")) == local.dimensions
