"""Where provider keys come from: a small resolver registry.

Today the only resolver reads settings (``QD_ANTHROPIC_API_KEY``...). The vault registers a
resolver with a lower ``priority`` number and wins; if it returns None the next one is asked.
A key never comes from the agent or the request. Resolvers run with the workspace's schema
active, so a vault resolver can read that workspace's secrets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from .catalog.selectors import ResolvedModel


@dataclass(frozen=True)
class ProviderCredential:
    api_key: str = ""
    base_url: str = ""  # empty: the provider's default

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"ProviderCredential(api_key={'***' if self.api_key else ''!r}, base_url={self.base_url!r})"


CredentialResolver = Callable[[str, "ResolvedModel"], ProviderCredential | None]

_resolvers: dict[str, tuple[int, CredentialResolver]] = {}
_lock = threading.Lock()


def register_credential_resolver(name: str, resolver: CredentialResolver, *, priority: int = 100) -> None:
    """``resolver(provider_name, model)`` returns a credential, or None to pass."""
    with _lock:
        _resolvers[name] = (priority, resolver)


def unregister_credential_resolver(name: str) -> None:
    with _lock:
        _resolvers.pop(name, None)


def resolve_credential(*, provider: str, model: ResolvedModel) -> ProviderCredential | None:
    for _priority, _name, resolver in sorted((p, n, r) for n, (p, r) in _resolvers.items()):
        credential = resolver(provider, model)
        if credential is not None:
            if model.endpoint and not credential.base_url:
                credential = ProviderCredential(api_key=credential.api_key, base_url=model.endpoint)
            return credential
    return None


def settings_resolver(provider: str, model: ResolvedModel) -> ProviderCredential | None:
    """Keys and endpoints from Django settings; a model's own endpoint wins over the setting."""
    if provider == "anthropic":
        return ProviderCredential(
            api_key=settings.LLM_ANTHROPIC_API_KEY, base_url=model.endpoint or settings.LLM_ANTHROPIC_BASE_URL
        )
    if provider == "openai_compat":
        return ProviderCredential(
            api_key=settings.LLM_OPENAI_COMPAT_API_KEY, base_url=model.endpoint or settings.LLM_OPENAI_COMPAT_BASE_URL
        )
    if provider == "offline":
        return ProviderCredential()
    return None


register_credential_resolver("settings", settings_resolver, priority=1000)
