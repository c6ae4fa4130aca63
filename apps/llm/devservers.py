"""Local fake provider servers: real HTTP on 127.0.0.1 with an ephemeral port, for tests, the
benchmark and offline development. Nothing here is used in production paths.

- ``FakeAnthropicServer`` speaks the Anthropic Messages API wire format (``POST /v1/messages``,
  ``POST /v1/messages/count_tokens``): text and ``tool_use`` blocks, ``stop_reason``, and
  ``usage`` with ``cache_creation_input_tokens``/``cache_read_input_tokens`` (a system prompt
  or tool list marked ``cache_control`` is "written" on first sight and "read" afterwards),
  and Anthropic-shaped errors (``overloaded_error`` 529, ``rate_limit_error`` 429...). The
  real ``anthropic`` SDK talks to it with ``base_url=server.url``.
- ``FakeOpenAIServer`` speaks OpenAI chat completions (``POST /v1/chat/completions``), like
  Ollama, vLLM or llama.cpp server; use ``base_url=server.url + "/v1"``.

By default both answer like the offline provider (its registered scripts included), so they
play realistic tool-use turns. Override with ``server.responder = fn(neutral_request, wire) ->
ProviderReply``, queue failures with ``server.fail_next(count, status)``, add latency with
``server.delay_s``, and inspect ``server.requests`` (path, headers, JSON body).

    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(api_key="test", base_url=server.url)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .providers.offline import count_tokens, offline_reply, request_text
from .types import (
    ChatRequest,
    ContentBlock,
    Message,
    ProviderReply,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)

Responder = Callable[[ChatRequest, dict[str, Any]], ProviderReply]


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Failure:
    status: int
    error_type: str
    message: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: _FakeServerBase


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
    # Headers and body go out in one write with Nagle off: otherwise the body waits for the
    # client's delayed ACK of the headers (40 ms a response on Linux).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": {"type": "invalid_request_error", "message": "malformed JSON"}})
            return
        status, payload = self.server.owner.handle(self.path, dict(self.headers.items()), body)
        self._send(status, payload)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 529 or status == 429:
            self.send_header("retry-after", "0")
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        buffered.extend([b"\r\n", data])
        self.wfile.write(b"".join(buffered))
        buffered.clear()


class _FakeServerBase:
    def __init__(
        self, *, responder: Responder | None = None, delay_s: float = 0.0, record: bool = True, port: int = 0
    ) -> None:
        self.responder: Responder = responder or (lambda request, wire: offline_reply(request))
        self.delay_s = delay_s
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _FakeServerBase:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, count: int = 1, status: int = 529, message: str = "") -> None:
        error_type = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            500: "api_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        with self._lock:
            for _ in range(count):
                self._failures.append(_Failure(status, error_type, message or error_type.replace("_", " ")))

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.record:
            with self._lock:
                self.requests.append(RecordedRequest(path=path, headers=headers, body=body))
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.route(path, headers, body)

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


# --- Anthropic Messages API ------------------------------------------------------------------------


def _anthropic_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part.get("text", "") for part in value if isinstance(part, dict))
    return ""


def anthropic_wire_to_request(body: dict[str, Any]) -> ChatRequest:
    messages: list[Message] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            messages.append(Message(role=message["role"], content=content))
            continue
        blocks: list[ContentBlock] = []
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                blocks.append(TextBlock(block.get("text", "")))
            elif kind == "tool_use":
                blocks.append(ToolUseBlock(id=block["id"], name=block["name"], arguments=block.get("input") or {}))
            elif kind == "tool_result":
                blocks.append(
                    ToolResultBlock(
                        tool_use_id=block["tool_use_id"],
                        content=_anthropic_text(block.get("content")),
                        is_error=bool(block.get("is_error")),
                    )
                )
        messages.append(Message(role=message["role"], content=tuple(blocks)))
    tools = [
        ToolSpec(name=t["name"], description=t.get("description", ""), input_schema=t.get("input_schema") or {})
        for t in body.get("tools") or []
    ]
    return ChatRequest(
        messages=messages or [Message.user("")],
        system=_anthropic_text(body.get("system")),
        tools=tools,
        max_tokens=int(body.get("max_tokens") or 1),
    )


def _cacheable_prefix(body: dict[str, Any]) -> str:
    """The part of the prompt marked with cache_control (system and/or tools), or ""."""
    parts = []
    system = body.get("system")
    if isinstance(system, list) and any(isinstance(p, dict) and p.get("cache_control") for p in system):
        parts.append(_anthropic_text(system))
    tools = body.get("tools") or []
    if any(isinstance(t, dict) and t.get("cache_control") for t in tools):
        parts.append(json.dumps(tools, sort_keys=True))
    return "\n".join(parts)


class FakeAnthropicServer(_FakeServerBase):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cached: set[str] = set()

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0]
        if path == "/v1/messages/count_tokens":
            return 200, {"input_tokens": count_tokens(request_text(anthropic_wire_to_request(body)))}
        if path != "/v1/messages":
            return 404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {path}"}}
        if not (headers.get("x-api-key") or headers.get("X-Api-Key") or headers.get("Authorization")):
            return 401, {"type": "error", "error": {"type": "authentication_error", "message": "missing API key"}}
        failure = self._take_failure()
        if failure is not None:
            return failure.status, {"type": "error", "error": {"type": failure.error_type, "message": failure.message}}
        request = anthropic_wire_to_request(body)
        reply = self.responder(request, body)
        usage = {
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
            "cache_creation_input_tokens": reply.usage.cache_write_tokens,
            "cache_read_input_tokens": reply.usage.cache_read_tokens,
        }
        prefix = _cacheable_prefix(body)
        if prefix and not (reply.usage.cache_read_tokens or reply.usage.cache_write_tokens):
            # Prompt caching as Anthropic bills it: the marked prefix is written once, then read.
            prefix_tokens = count_tokens(prefix)
            digest = hashlib.sha256(prefix.encode()).hexdigest()
            with self._lock:
                seen = digest in self._cached
                self._cached.add(digest)
            usage["input_tokens"] = max(1, usage["input_tokens"] - prefix_tokens)
            usage["cache_read_input_tokens" if seen else "cache_creation_input_tokens"] = prefix_tokens
        content: list[dict[str, Any]] = []
        for block in reply.content:
            if isinstance(block, TextBlock):
                content.append({"type": "text", "text": block.text})
            elif isinstance(block, ToolUseBlock):
                content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.arguments)})
        return 200, {
            "id": reply.provider_message_id or f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }


# --- OpenAI-compatible chat completions ----------------------------------------------------------------


def openai_wire_to_request(body: dict[str, Any]) -> ChatRequest:
    system = ""
    messages: list[Message] = []
    pending_results: list[ToolResultBlock] = []

    def flush() -> None:
        if pending_results:
            messages.append(Message(role="user", content=tuple(pending_results)))
            pending_results.clear()

    for message in body.get("messages") or []:
        role = message.get("role")
        if role == "system":
            system += str(message.get("content") or "")
        elif role == "tool":
            pending_results.append(
                ToolResultBlock(tool_use_id=str(message.get("tool_call_id")), content=str(message.get("content") or ""))
            )
        elif role == "assistant":
            flush()
            blocks: list[ContentBlock] = []
            if message.get("content"):
                blocks.append(TextBlock(str(message["content"])))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append(ToolUseBlock(id=str(call.get("id")), name=str(function.get("name")), arguments=arguments))
            messages.append(Message(role="assistant", content=tuple(blocks)))
        else:
            flush()
            messages.append(Message(role="user", content=str(message.get("content") or "")))
    flush()
    tools = [
        ToolSpec(
            name=t["function"]["name"],
            description=t["function"].get("description", ""),
            input_schema=t["function"].get("parameters") or {},
        )
        for t in body.get("tools") or []
        if t.get("type") == "function"
    ]
    return ChatRequest(
        messages=messages or [Message.user("")], system=system, tools=tools, max_tokens=int(body.get("max_tokens") or 1)
    )


_FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length", "stop_sequence": "stop"}


class FakeOpenAIServer(_FakeServerBase):
    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0]
        if not path.endswith("/chat/completions"):
            return 404, {"error": {"type": "not_found", "message": f"no route {path}"}}
        failure = self._take_failure()
        if failure is not None:
            return failure.status, {"error": {"type": failure.error_type, "message": failure.message}}
        request = openai_wire_to_request(body)
        reply = self.responder(request, body)
        text = "".join(b.text for b in reply.content if isinstance(b, TextBlock))
        calls = [
            {
                "id": b.id.replace("toolu_", "call_"),
                "type": "function",
                "function": {"name": b.name, "arguments": json.dumps(dict(b.arguments))},
            }
            for b in reply.content
            if isinstance(b, ToolUseBlock)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        prompt = reply.usage.input_tokens + reply.usage.cache_read_tokens
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": _FINISH.get(reply.stop_reason, "stop")}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": reply.usage.output_tokens,
                "total_tokens": prompt + reply.usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": reply.usage.cache_read_tokens},
            },
        }


# --- standalone: python -m apps.llm.devservers --kind anthropic --usage worst-case ------------------


def worst_case_responder(request: ChatRequest, wire: dict[str, Any]) -> ProviderReply:
    """Bills exactly what the gateway reserved (its input estimate plus max_tokens), so a
    budget sized for K worst cases admits exactly K calls (the benchmark's overspend check)."""
    from .tokens import estimate_input_tokens

    reply = offline_reply(request)
    return ProviderReply(
        content=reply.content,
        stop_reason=reply.stop_reason,
        usage=Usage(input_tokens=estimate_input_tokens(request), output_tokens=request.max_tokens),
        provider_message_id=reply.provider_message_id,
    )


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Run a fake provider server on 127.0.0.1.")
    parser.add_argument("--kind", choices=["anthropic", "openai"], default="anthropic")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--usage", choices=["text", "worst-case"], default="text")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    responder = worst_case_responder if args.usage == "worst-case" else None
    cls = FakeAnthropicServer if args.kind == "anthropic" else FakeOpenAIServer
    server = cls(responder=responder, delay_s=args.delay_ms / 1000, record=False, port=args.port)
    print(server.port, flush=True)  # the parent reads the port from the first line
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
