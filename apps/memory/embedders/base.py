from __future__ import annotations

import logging
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


logger = logging.getLogger(__name__)


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


def warm_up(name: str) -> None:
    """Create embedder ``name`` and load its model now (an embedder with a ``warm()`` method
    loads lazily otherwise), so that the first request does not wait seconds for it."""
    warm = getattr(get_embedder(name), "warm", None)
    if callable(warm):
        warm()


def warm_up_in_background(name: str) -> threading.Thread:
    """``warm_up(name)`` in a daemon thread; a failure is logged (the first use then reports
    it as usual) and does not stop the process."""

    def run() -> None:
        try:
            warm_up(name)
        except Exception:
            logger.warning("preloading embedder %s failed; it will load on first use", name, exc_info=True)

    thread = threading.Thread(target=run, name=f"embedder-warm-up-{name}", daemon=True)
    thread.start()
    return thread
