from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from apps.core.errors import GovernanceUnavailable, ValidationFailed


class EmbeddingFailed(GovernanceUnavailable):
    code = "embedding_failed"
    default_message = "The embedder could not embed the text; nothing was written."


@runtime_checkable
class Embedder(Protocol):
    name: str
    model: str
    dimensions: int

    @property
    def identity(self) -> str: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for texts to store, unit length, in order."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        ...


def identity_of(name: str, model: str, dimensions: int) -> str:
    return f"{name}/{model}@{dimensions}"


Factory = Callable[[], Embedder]
_factories: dict[str, Factory] = {}
_instances: dict[str, Embedder] = {}
_lock = threading.Lock()


def register(name: str, factory: Factory) -> None:
    """Register ``factory`` under ``name``; it is called once, on first use."""
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def available() -> list[str]:
    return sorted(_factories)


def get_embedder(name: str) -> Embedder:
    # Models are expensive to load (seconds, hundreds of MB): one instance per process.
    with _lock:
        embedder = _instances.get(name)
        if embedder is not None:
            return embedder
        factory = _factories.get(name)
        if factory is None:
            raise ValidationFailed(
                f"Unknown embedder {name!r}.",
                code="unknown_embedder",
                details={"embedder": name, "known": sorted(_factories)},
            )
        embedder = factory()
        _instances[name] = embedder
        return embedder
