"""The embedders every installation has. Registered from ``MemoryConfig.ready()``."""

from __future__ import annotations

from django.conf import settings

from .base import Embedder, register
from .local import LocalMiniLM
from .openai_compat import OpenAICompatible


def _openai() -> Embedder:
    return OpenAICompatible(
        base_url=settings.MEMORY_OPENAI_BASE_URL,
        model=settings.MEMORY_OPENAI_MODEL,
        dimensions=settings.MEMORY_OPENAI_DIMENSIONS,
        api_key=settings.MEMORY_OPENAI_API_KEY,
    )


def register_builtin() -> None:
    register("local-minilm", LocalMiniLM)
    register("openai", _openai)
