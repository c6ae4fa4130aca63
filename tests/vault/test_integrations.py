"""The vault plugged into the LLM gateway: provider keys kept as vault secrets."""

from __future__ import annotations

from typing import Any

import pytest

from apps.tenants.models import Workspace

from .conftest import make_secret

devservers = pytest.importorskip("apps.llm.devservers")
gateway = pytest.importorskip("apps.llm.gateway")
llm_types = pytest.importorskip("apps.llm.types")


def _call_haiku() -> Any:
    request = llm_types.ChatRequest(
        messages=[llm_types.Message.user("Say hello")], max_tokens=16, model="claude-haiku-4-5"
    )
    return gateway.chat(request=request, context=llm_types.CallContext(purpose="vault provider key test"))


def _sent_key(server: Any) -> str:
    """The key the SDK sent (anthropic 2.x uses Authorization: Bearer, older ones x-api-key)."""
    headers = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    return str(headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer "))


def test_a_provider_key_in_the_vault_is_used_by_the_gateway(in_acme: Workspace, settings: Any) -> None:
    with devservers.FakeAnthropicServer() as server:
        settings.LLM_ANTHROPIC_BASE_URL = server.url
        settings.LLM_ANTHROPIC_API_KEY = "key-from-settings"
        _call_haiku()
        assert _sent_key(server) == "key-from-settings"
        make_secret(name="llm.anthropic", value="key-from-the-vault-123", tier="L4")
        _call_haiku()
        assert _sent_key(server) == "key-from-the-vault-123"
