"""What a provider is, and how it fails.

A provider turns a provider-neutral ``ChatRequest`` into a ``ProviderReply`` for one catalog
model. It never touches budgets, routing or the journal: the gateway does. Failures are
``ProviderError``; ``fallback_ok`` says whether trying the next model in the fallback list
makes sense (overload, rate limit, server error, network, missing or rejected credentials) or
whether the request itself is at fault (a 400 would fail the same way elsewhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from apps.llm.catalog.selectors import ResolvedModel
    from apps.llm.credentials import ProviderCredential
    from apps.llm.types import ChatRequest, ProviderReply


class ProviderError(Exception):
    def __init__(
        self, message: str, *, code: str = "provider_error", status: int | None = None, fallback_ok: bool = True
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.fallback_ok = fallback_ok

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.code}{status}: {self.message}"


class Provider(Protocol):
    name: str

    def chat(self, *, model: ResolvedModel, request: ChatRequest, credential: ProviderCredential) -> ProviderReply:
        """Make one model call. Raise ProviderError on failure; never retry internally."""
        ...


def status_is_fallback_ok(status: int) -> bool:
    """Overload, rate limits, server errors, timeouts and credential rejections: try elsewhere."""
    return status in {401, 403, 408, 409, 429} or status >= 500
