"""Provider registry: adding a provider is adding one module and one ``register_provider`` call.

Built in: ``anthropic`` (official SDK), ``openai_compat`` (chat completions over HTTP, for
Ollama, vLLM, llama.cpp server), ``offline`` (deterministic scripted turns).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .base import Provider, ProviderError

_factories: dict[str, Callable[[], Provider]] = {}
_instances: dict[str, Provider] = {}
_lock = threading.Lock()


def register_provider(name: str, factory: Callable[[], Provider]) -> None:
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def get_provider(name: str) -> Provider:
    provider = _instances.get(name)
    if provider is not None:
        return provider
    with _lock:
        if name not in _instances:
            factory = _factories.get(name)
            if factory is None:
                raise ProviderError(f"no provider named {name!r} is registered", code="unknown_provider")
            _instances[name] = factory()
        return _instances[name]


def registered_providers() -> list[str]:
    return sorted(_factories)


def register_builtin_providers() -> None:
    from .anthropic import AnthropicProvider
    from .offline import OfflineProvider
    from .openai_compat import OpenAICompatProvider

    register_provider("anthropic", AnthropicProvider)
    register_provider("openai_compat", OpenAICompatProvider)
    register_provider("offline", OfflineProvider)


__all__ = ["Provider", "ProviderError", "get_provider", "register_builtin_providers", "register_provider"]
