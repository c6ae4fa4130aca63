"""Anthropic Messages API through the official ``anthropic`` SDK.

``base_url`` comes from the credential (settings or a model's endpoint), which is how tests
and the benchmark point the real SDK at a local fake. The SDK's own retries are off: the
gateway decides what happens after a failure (fallbacks), and journals it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anthropic
from django.conf import settings

from apps.llm.types import ContentBlock, Message, ProviderReply, TextBlock, ToolUseBlock, Usage

from .base import ProviderError, status_is_fallback_ok

if TYPE_CHECKING:
    from apps.llm.catalog.selectors import ResolvedModel
    from apps.llm.credentials import ProviderCredential
    from apps.llm.types import ChatRequest


def _block_to_wire(block: ContentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.arguments)}
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content,
        "is_error": block.is_error,
    }


def _message_to_wire(message: Message) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    return {"role": message.role, "content": [_block_to_wire(b) for b in message.content]}


def request_to_wire(model: ResolvedModel, request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of ``client.messages.create`` for this request."""
    params: dict[str, Any] = {
        "model": model.wire_name,
        "max_tokens": request.max_tokens,
        "messages": [_message_to_wire(m) for m in request.messages],
    }
    if request.system:
        if request.cache_prompt:
            params["system"] = [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}]
        else:
            params["system"] = request.system
    if request.tools:
        tools = [t.to_dict() for t in request.tools]
        if request.cache_prompt:
            tools[-1]["cache_control"] = {"type": "ephemeral"}
        params["tools"] = tools
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.stop_sequences:
        params["stop_sequences"] = list(request.stop_sequences)
    return params


def reply_from_message(message: Any) -> ProviderReply:
    blocks: list[ContentBlock] = []
    for block in message.content:
        if block.type == "text":
            blocks.append(TextBlock(text=block.text))
        elif block.type == "tool_use":
            arguments = block.input if isinstance(block.input, dict) else {"value": block.input}
            blocks.append(ToolUseBlock(id=block.id, name=block.name, arguments=arguments))
        # thinking and server-tool blocks are not part of the neutral interface
    usage = message.usage
    return ProviderReply(
        content=tuple(blocks),
        stop_reason=str(message.stop_reason or "end_turn"),
        usage=Usage(
            input_tokens=int(usage.input_tokens or 0),
            output_tokens=int(usage.output_tokens or 0),
            cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
            cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        ),
        provider_message_id=str(message.id or ""),
    )


class AnthropicProvider:
    name = "anthropic"

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], anthropic.Anthropic] = {}
        self._lock = threading.Lock()

    def _client(self, credential: ProviderCredential) -> anthropic.Anthropic:
        # One client per key and endpoint: it holds the HTTP connection pool (keep-alive).
        key = (credential.api_key, credential.base_url)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = anthropic.Anthropic(
                        api_key=credential.api_key,
                        base_url=credential.base_url or None,
                        max_retries=0,
                        timeout=float(settings.LLM_PROVIDER_TIMEOUT_SECONDS),
                    )
                    self._clients[key] = client
        return client

    def chat(self, *, model: ResolvedModel, request: ChatRequest, credential: ProviderCredential) -> ProviderReply:
        if not credential.api_key:
            raise ProviderError("no Anthropic API key is configured", code="provider_not_configured")
        try:
            message = self._client(credential).messages.create(**request_to_wire(model, request))
        except anthropic.APIStatusError as exc:
            code = (
                "overloaded" if exc.status_code == 529 else "rate_limited" if exc.status_code == 429 else "http_error"
            )
            raise ProviderError(
                _error_message(exc),
                code=code,
                status=exc.status_code,
                fallback_ok=status_is_fallback_ok(exc.status_code),
            ) from exc
        except anthropic.APITimeoutError as exc:
            raise ProviderError("the provider did not answer in time", code="timeout") from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderError(f"cannot reach the provider: {exc}", code="unreachable") from exc
        except anthropic.APIError as exc:
            raise ProviderError(str(exc), code="provider_error") from exc
        return reply_from_message(message)


def _error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if not isinstance(error, dict):
        error = {}
    return str(error.get("message") or exc.message)[:500]
