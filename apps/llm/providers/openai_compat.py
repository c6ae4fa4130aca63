"""OpenAI-compatible chat completions over HTTP (httpx), for self-hosted models: Ollama
(``http://host:11434/v1``), vLLM, llama.cpp server. ``base_url`` ends before
``/chat/completions``."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings

from apps.llm.types import ContentBlock, Message, ProviderReply, TextBlock, ToolResultBlock, ToolUseBlock, Usage

from .base import ProviderError, status_is_fallback_ok

if TYPE_CHECKING:
    from apps.llm.catalog.selectors import ResolvedModel
    from apps.llm.credentials import ProviderCredential
    from apps.llm.types import ChatRequest

_FINISH_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def _messages_to_wire(request: ChatRequest) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    if request.system:
        wire.append({"role": "system", "content": request.system})
    for message in request.messages:
        wire.extend(_message_to_wire(message))
    return wire


def _message_to_wire(message: Message) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    if message.role == "assistant":
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
        calls = [
            {
                "id": b.id,
                "type": "function",
                "function": {"name": b.name, "arguments": json.dumps(dict(b.arguments), separators=(",", ":"))},
            }
            for b in message.content
            if isinstance(b, ToolUseBlock)
        ]
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    # A user turn: tool results become "tool" messages, text stays a user message.
    result: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": b.tool_use_id, "content": b.content}
        for b in message.content
        if isinstance(b, ToolResultBlock)
    ]
    text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
    if text:
        result.append({"role": "user", "content": text})
    return result


def request_to_wire(model: ResolvedModel, request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model.wire_name,
        "messages": _messages_to_wire(request),
        "max_tokens": request.max_tokens,
        "stream": False,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)},
            }
            for t in request.tools
        ]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    return body


def _parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"_raw": str(raw)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def reply_from_wire(data: dict[str, Any]) -> ProviderReply:
    try:
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderError("the reply has no choices", code="bad_reply", fallback_ok=True) from exc
    blocks: list[ContentBlock] = []
    if message.get("content"):
        blocks.append(TextBlock(text=str(message["content"])))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            ToolUseBlock(
                id=str(call.get("id") or ""),
                name=str(function.get("name") or ""),
                arguments=_parse_arguments(function.get("arguments")),
            )
        )
    usage = data.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    stop = _FINISH_REASONS.get(str(choice.get("finish_reason") or "stop"), "end_turn")
    if stop == "end_turn" and any(isinstance(b, ToolUseBlock) for b in blocks):
        stop = "tool_use"
    return ProviderReply(
        content=tuple(blocks),
        stop_reason=stop,
        usage=Usage(
            input_tokens=max(0, prompt - cached),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cache_read_tokens=cached,
        ),
        provider_message_id=str(data.get("id") or ""),
    )


class OpenAICompatProvider:
    name = "openai_compat"

    def __init__(self) -> None:
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, base_url: str) -> httpx.Client:
        client = self._clients.get(base_url)
        if client is None:
            with self._lock:
                client = self._clients.get(base_url)
                if client is None:
                    client = httpx.Client(
                        base_url=base_url.rstrip("/") + "/",
                        timeout=float(settings.LLM_PROVIDER_TIMEOUT_SECONDS),
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
                    )
                    self._clients[base_url] = client
        return client

    def chat(self, *, model: ResolvedModel, request: ChatRequest, credential: ProviderCredential) -> ProviderReply:
        if not credential.base_url:
            raise ProviderError("no endpoint is configured for this model", code="provider_not_configured")
        headers = {"Authorization": f"Bearer {credential.api_key}"} if credential.api_key else {}
        try:
            response = self._client(credential.base_url).post(
                "chat/completions", json=request_to_wire(model, request), headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ProviderError("the provider did not answer in time", code="timeout") from exc
        except httpx.TransportError as exc:
            raise ProviderError(f"cannot reach the provider: {exc}", code="unreachable") from exc
        if response.status_code >= 400:
            raise ProviderError(
                response.text[:500],
                code="overloaded" if response.status_code in (429, 503) else "http_error",
                status=response.status_code,
                fallback_ok=status_is_fallback_ok(response.status_code),
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderError("the reply is not JSON", code="bad_reply") from exc
        return reply_from_wire(data)
