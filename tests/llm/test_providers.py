"""Providers against real local servers: the official anthropic SDK against a fake Messages
API, and the OpenAI-compatible provider against a fake chat-completions server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from apps.audit.models import JournalEntry
from apps.budgets.models import LedgerEntry
from apps.llm.catalog.models import CatalogModel, ModelPrice
from apps.llm.catalog.selectors import catalog_invalidate, model_resolve
from apps.llm.credentials import ProviderCredential
from apps.llm.devservers import FakeAnthropicServer, FakeOpenAIServer
from apps.llm.gateway import chat
from apps.llm.providers import ProviderError, get_provider
from apps.llm.providers.offline import ScriptToolCall, ScriptTurn, match_system, register_script, unregister_script
from apps.llm.types import CallContext, ChatRequest, Message, ToolResultBlock, ToolSpec, ToolUseBlock
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

TOOLS = [
    ToolSpec(
        "lookup_order",
        "Find an order.",
        {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
    )
]


@pytest.fixture(autouse=True)
def order_script() -> Iterator[None]:
    register_script(
        "test-orders",
        match_system("order desk"),
        [
            ScriptTurn(text="Checking the order.", tool_calls=[ScriptToolCall("lookup_order", {"order": "4711"})]),
            ScriptTurn(text="Your order 4711 ships tomorrow."),
        ],
    )
    yield
    unregister_script("test-orders")


@pytest.fixture
def in_acme(db: None, acme: Workspace) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


def test_the_sdk_speaks_to_the_fake_messages_api(fake_anthropic: FakeAnthropicServer) -> None:
    """The plain SDK, no Quarterdeck code: the fake's wire format is the real one."""
    client = anthropic.Anthropic(api_key="sk-test", base_url=fake_anthropic.url, max_retries=0)
    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        system=[{"type": "text", "text": "You are the order desk. " * 20, "cache_control": {"type": "ephemeral"}}],
        tools=[t.to_dict() for t in TOOLS],  # type: ignore[misc]
        messages=[{"role": "user", "content": "Where is order 4711?"}],
    )
    assert message.stop_reason == "tool_use"
    tool_use = next(b for b in message.content if b.type == "tool_use")
    assert (tool_use.name, tool_use.input) == ("lookup_order", {"order": "4711"})
    assert message.usage.cache_creation_input_tokens and message.usage.cache_creation_input_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    again = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        system=[{"type": "text", "text": "You are the order desk. " * 20, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "And order 4712?"}],
    )
    assert again.usage.cache_read_input_tokens == message.usage.cache_creation_input_tokens
    with pytest.raises(anthropic.APIStatusError) as caught:
        fake_anthropic.fail_next(1, status=529)
        client.messages.create(model="x", max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 529


def test_gateway_tool_use_round_trip_with_cache_usage_and_prices(
    in_acme: Workspace, fake_anthropic: FakeAnthropicServer
) -> None:
    mission_id = uuid.uuid4()
    system = "You are the order desk of Acme. Be brief. " * 30
    first = chat(
        request=ChatRequest(system=system, messages=[Message.user("Where is order 4711?")], tools=TOOLS,
                            max_tokens=300, cache_prompt=True),
        context=CallContext(mission_id=mission_id, agent_model="claude-sonnet-4-6", request_id=f"{mission_id}:1"),
    )  # fmt: skip
    assert (first.model, first.provider, first.stop_reason) == ("claude-sonnet-4-6", "anthropic", "tool_use")
    [call] = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("lookup_order", {"order": "4711"})
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0

    # The SDK sent the configured key (this SDK sends it as a bearer token) and the prompt marked for caching.
    sent = fake_anthropic.requests[-1]
    headers = {name.lower(): value for name, value in sent.headers.items()}
    assert headers["authorization"] == "Bearer sk-ant-test-key"
    assert sent.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}

    second = chat(
        request=ChatRequest(
            system=system,
            messages=[
                Message.user("Where is order 4711?"),
                first.as_message(),
                Message.tool_results(ToolResultBlock(tool_use_id=call.id, content="status: packed")),
            ],
            tools=TOOLS,
            max_tokens=300,
            cache_prompt=True,
        ),
        context=CallContext(mission_id=mission_id, agent_model="claude-sonnet-4-6", request_id=f"{mission_id}:2"),
    )
    assert second.stop_reason == "end_turn" and "ships tomorrow" in second.text
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert fake_anthropic.requests[-1].body["messages"][2]["content"][0]["type"] == "tool_result"

    model = model_resolve(model_id="claude-sonnet-4-6")
    assert model is not None
    for response in (first, second):
        settlement = LedgerEntry.objects.get(request_id=response.request_id, kind="settlement")
        usage = response.usage
        assert (settlement.input_tokens, settlement.output_tokens) == (usage.input_tokens, usage.output_tokens)
        assert (settlement.cache_read_tokens, settlement.cache_write_tokens) == (
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        )
        assert settlement.price_id == model.price.id
        assert (settlement.price_cache_read_per_mtok, settlement.price_cache_write_per_mtok) == (300_000, 3_750_000)
        expected = (
            -(-usage.input_tokens * 3_000_000 // 10**6)
            - (-usage.output_tokens * 15_000_000 // 10**6)
            - (-usage.cache_read_tokens * 300_000 // 10**6)
            - (-usage.cache_write_tokens * 3_750_000 // 10**6)
        )
        assert settlement.amount_microusd == response.cost_microusd == expected


def test_a_new_price_version_is_recorded_on_later_entries(in_acme: Workspace) -> None:
    from apps.llm.catalog.services import model_price_add

    before = chat(
        request=ChatRequest(messages=[Message.user("hello")]), context=CallContext(agent_model="offline-small")
    )
    new = model_price_add(
        model=CatalogModel.objects.get(model_id="offline-small"),
        input_per_mtok=2_000_000,
        output_per_mtok=10_000_000,
        cache_read_per_mtok=200_000,
        cache_write_per_mtok=2_500_000,
        source="test",
    )
    catalog_invalidate()  # on_commit does this in production; the test transaction never commits
    after = chat(
        request=ChatRequest(messages=[Message.user("hello")]), context=CallContext(agent_model="offline-small")
    )
    old_entry = LedgerEntry.objects.get(request_id=before.request_id, kind="settlement")
    new_entry = LedgerEntry.objects.get(request_id=after.request_id, kind="settlement")
    assert new_entry.price_id == new.pk and new_entry.price_version == new.version == 2
    assert old_entry.price_id != new.pk and old_entry.price_version == 1
    assert after.cost_microusd == 2 * before.cost_microusd
    assert ModelPrice.objects.filter(model_id="offline-small").count() == 2


def test_openai_compatible_provider_round_trip(db: None, fake_openai: FakeOpenAIServer) -> None:
    model = model_resolve(model_id="offline-medium")
    assert model is not None
    provider = get_provider("openai_compat")
    credential = ProviderCredential(api_key="local", base_url=fake_openai.url + "/v1")
    request = ChatRequest(system="You are the order desk.", messages=[Message.user("Where is 4711?")], tools=TOOLS)
    reply = provider.chat(model=model, request=request, credential=credential)
    assert reply.stop_reason == "tool_use"
    tool = next(b for b in reply.content if isinstance(b, ToolUseBlock))
    assert (tool.name, dict(tool.arguments)) == ("lookup_order", {"order": "4711"})
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer local"
    assert sent.body["tools"][0]["function"]["name"] == "lookup_order"
    assert sent.body["messages"][0] == {"role": "system", "content": "You are the order desk."}

    follow_up = ChatRequest(
        system="You are the order desk.",
        messages=[
            Message.user("Where is 4711?"),
            Message.assistant(*reply.content),
            Message.tool_results(ToolResultBlock(tool_use_id=tool.id, content="packed")),
        ],
        tools=TOOLS,
    )
    final = provider.chat(model=model, request=follow_up, credential=credential)
    assert final.stop_reason == "end_turn" and "ships tomorrow" in final.content[0].text  # type: ignore[union-attr]
    wire = fake_openai.requests[-1].body["messages"]
    assert wire[2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert wire[3] == {"role": "tool", "tool_call_id": tool.id, "content": "packed"}


def test_openai_compatible_errors_map_to_provider_errors(db: None, fake_openai: FakeOpenAIServer) -> None:
    model = model_resolve(model_id="offline-medium")
    assert model is not None
    provider = get_provider("openai_compat")
    credential = ProviderCredential(base_url=fake_openai.url + "/v1")
    request = ChatRequest(messages=[Message.user("hi")])
    fake_openai.fail_next(1, status=503)
    with pytest.raises(ProviderError) as overloaded:
        provider.chat(model=model, request=request, credential=credential)
    assert overloaded.value.fallback_ok and overloaded.value.status == 503
    fake_openai.fail_next(1, status=400)
    with pytest.raises(ProviderError) as bad:
        provider.chat(model=model, request=request, credential=credential)
    assert not bad.value.fallback_ok
    with pytest.raises(ProviderError) as unreachable:
        provider.chat(model=model, request=request, credential=ProviderCredential(base_url="http://127.0.0.1:9/v1"))
    assert unreachable.value.code == "unreachable" and unreachable.value.fallback_ok


def test_an_openai_compatible_catalog_model_is_routed_through_the_gateway(
    in_acme: Workspace, fake_openai: FakeOpenAIServer
) -> None:
    from apps.llm.catalog.services import model_price_add

    local = CatalogModel.objects.create(
        model_id="llama-3.1-8b-local", display_name="Llama local", provider="openai_compat",
        provider_model="llama3.1:8b", endpoint=fake_openai.url + "/v1", tier="small", context_window=8192,
        max_output_tokens=2048,
    )  # fmt: skip
    model_price_add(model=local, input_per_mtok=0, output_per_mtok=0, cache_read_per_mtok=0, cache_write_per_mtok=0)
    catalog_invalidate()
    response = chat(
        request=ChatRequest(system="You are the order desk.", messages=[Message.user("4711?")], tools=TOOLS),
        context=CallContext(agent_model="llama-3.1-8b-local"),
    )
    assert response.provider == "openai_compat" and response.tool_calls[0].name == "lookup_order"
    assert response.cost_microusd == 0
    assert fake_openai.requests[-1].body["model"] == "llama3.1:8b"
    assert JournalEntry.objects.filter(kind="llm.completed", request_id=response.request_id).exists()


def test_missing_key_is_a_provider_error_worth_a_fallback(db: None, settings: Any) -> None:
    settings.LLM_ANTHROPIC_API_KEY = ""
    model = model_resolve(model_id="claude-haiku-4-5")
    assert model is not None
    with pytest.raises(ProviderError) as caught:
        get_provider("anthropic").chat(model=model, request=ChatRequest(messages=[Message.user("hi")]),
                                       credential=ProviderCredential())  # fmt: skip
    assert caught.value.code == "provider_not_configured" and caught.value.fallback_ok
