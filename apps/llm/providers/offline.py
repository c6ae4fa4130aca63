"""The offline provider: deterministic, scripted, realistic turns, no network.

It powers the demo and tests through the same gateway as a real model: routing, budgets,
the ledger and the journal all see an ordinary call, priced at the catalog model's prices
(``offline-large``/``-medium``/``-small`` are priced like Opus/Sonnet/Haiku).

Scripts
-------
Register a trajectory once (e.g. from ``AppConfig.ready()``)::

    from apps.llm.providers.offline import ScriptToolCall, ScriptTurn, match_all, match_system, register_script

    register_script(
        "support-ticket",
        match_all(match_system("support agent"), match_tools("lookup_customer")),
        [
            ScriptTurn(text="Let me look the customer up.",
                       tool_calls=[ScriptToolCall("lookup_customer", {"email": "ana@example.com"})]),
            ScriptTurn(tool_calls=[ScriptToolCall("send_email", lambda req: {"to": "ana@example.com", ...})]),
            ScriptTurn(text="I have answered the customer and closed the ticket."),
        ],
    )

How a reply is chosen:
- The first registered script whose ``matcher(request)`` is true (lowest ``priority`` first,
  then name) plays. A matcher sees the whole ``ChatRequest``: ``system``, ``messages``
  (``first_user_text``, ``last_user_text``), ``tool_names``.
- Turn ``n`` is played, where ``n`` is the number of assistant messages already in the
  conversation; so a conversation replayed from a checkpoint gets the same reply.
- A turn emits its text and its tool calls, but only for tools present in the request (the
  others are dropped). Arguments and text may be callables of the request.
- The stop reason is ``tool_use`` when the turn calls a tool, else ``end_turn``.
- Past the last turn, or with no matching script, or when every tool of a turn is missing,
  the reply is a plausible generic answer that ends the turn.

Tokens are computed from the text (one token per four characters, rounded up), so usage and
cost are deterministic; tool-use ids are derived from the conversation, so they are too.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from apps.llm.types import (
    ChatRequest,
    ContentBlock,
    Message,
    ProviderReply,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

if TYPE_CHECKING:
    from apps.llm.catalog.selectors import ResolvedModel
    from apps.llm.credentials import ProviderCredential

CHARS_PER_TOKEN = 4

Matcher = Callable[[ChatRequest], bool]
Arguments = Mapping[str, Any] | Callable[[ChatRequest], Mapping[str, Any]]
Text = str | Callable[[ChatRequest], str]


@dataclass(frozen=True)
class ScriptToolCall:
    name: str
    arguments: Arguments = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptTurn:
    text: Text = ""
    tool_calls: Sequence[ScriptToolCall] = ()


@dataclass(frozen=True)
class Script:
    name: str
    matcher: Matcher
    turns: tuple[ScriptTurn, ...]
    priority: int = 100


_scripts: dict[str, Script] = {}
_lock = threading.Lock()


def register_script(name: str, matcher: Matcher, turns: Sequence[ScriptTurn], *, priority: int = 100) -> None:
    """Register (or replace) the script ``name``. See the module docstring."""
    if not turns:
        raise ValueError("a script needs at least one turn")
    with _lock:
        _scripts[name] = Script(name=name, matcher=matcher, turns=tuple(turns), priority=priority)


def unregister_script(name: str) -> None:
    with _lock:
        _scripts.pop(name, None)


def registered_scripts() -> list[str]:
    return sorted(_scripts)


def find_script(request: ChatRequest) -> Script | None:
    for script in sorted(_scripts.values(), key=lambda s: (s.priority, s.name)):
        if script.matcher(request):
            return script
    return None


# --- matchers ------------------------------------------------------------------------------------


def match_system(fragment: str) -> Matcher:
    needle = fragment.lower()
    return lambda request: needle in request.system.lower()


def match_first_user(fragment: str) -> Matcher:
    needle = fragment.lower()
    return lambda request: needle in request.first_user_text.lower()


def match_tools(*names: str) -> Matcher:
    wanted = frozenset(names)
    return lambda request: wanted <= request.tool_names


def match_all(*matchers: Matcher) -> Matcher:
    return lambda request: all(m(request) for m in matchers)


def match_any(*matchers: Matcher) -> Matcher:
    return lambda request: any(m(request) for m in matchers)


# --- playing -----------------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def request_text(request: ChatRequest) -> str:
    """Everything the model would read, serialised deterministically."""
    parts = [request.system]
    parts.extend(json.dumps(m.to_dict(), sort_keys=True, separators=(",", ":")) for m in request.messages)
    parts.extend(json.dumps(t.to_dict(), sort_keys=True, separators=(",", ":")) for t in request.tools)
    return "\n".join(parts)


def _fingerprint(request: ChatRequest) -> str:
    return hashlib.sha256(request_text(request).encode()).hexdigest()


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _last_tool_results(request: ChatRequest) -> list[ToolResultBlock]:
    for message in reversed(request.messages):
        if message.role == "user" and not isinstance(message.content, str):
            results = [b for b in message.content if isinstance(b, ToolResultBlock)]
            if results:
                return results
            return []
    return []


def _tool_name_for(request: ChatRequest, tool_use_id: str) -> str:
    for message in request.messages:
        for block in message.blocks:
            if isinstance(block, ToolUseBlock) and block.id == tool_use_id:
                return block.name
    return "the tool"


def generic_answer(request: ChatRequest) -> str:
    results = _last_tool_results(request)
    if results:
        names = sorted({_tool_name_for(request, r.tool_use_id) for r in results})
        failed = [r for r in results if r.is_error]
        if failed:
            return (
                f"The call to {', '.join(names)} did not succeed ({_snippet(failed[0].content, 120)}). "
                "I have stopped here so that a person can decide how to proceed."
            )
        return (
            f"Done. I used {', '.join(names)} and checked the result ({_snippet(results[0].content, 120)}). "
            "Nothing else is needed for this request."
        )
    topic = _snippet(request.last_user_text or request.first_user_text) or "your request"
    return (
        f"Here is my answer regarding “{topic}”: I reviewed the details provided and there is nothing "
        "that requires further action from me. Let me know if you would like me to look into anything else."
    )


def _arguments(call: ScriptToolCall, request: ChatRequest) -> dict[str, Any]:
    args = call.arguments(request) if callable(call.arguments) else call.arguments
    return dict(args or {})


def play(request: ChatRequest) -> tuple[tuple[ContentBlock, ...], str, str]:
    """(content, stop_reason, script name or "") for ``request``. Pure and deterministic."""
    script = find_script(request)
    turn_index = request.assistant_turns
    if script is None or turn_index >= len(script.turns):
        return (TextBlock(generic_answer(request)),), "end_turn", script.name if script else ""
    turn = script.turns[turn_index]
    text = turn.text(request) if callable(turn.text) else turn.text
    available = request.tool_names
    fingerprint = _fingerprint(request)
    blocks: list[ContentBlock] = []
    if text:
        blocks.append(TextBlock(text))
    for position, call in enumerate(turn.tool_calls):
        if call.name not in available:
            continue  # never call a tool the agent was not given
        digest = hashlib.sha256(f"{fingerprint}:{turn_index}:{position}:{call.name}".encode()).hexdigest()
        blocks.append(ToolUseBlock(id=f"toolu_off_{digest[:20]}", name=call.name, arguments=_arguments(call, request)))
    if not any(isinstance(b, ToolUseBlock) for b in blocks):
        if not blocks:
            blocks.append(TextBlock(generic_answer(request)))
        return tuple(blocks), "end_turn", script.name
    return tuple(blocks), "tool_use", script.name


def output_text(content: Sequence[ContentBlock]) -> str:
    parts: list[str] = []
    for block in content:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            parts.append(json.dumps({"name": block.name, "input": dict(block.arguments)}, sort_keys=True))
    return "\n".join(parts)


def offline_reply(request: ChatRequest) -> ProviderReply:
    content, stop_reason, _script = play(request)
    output_tokens = max(1, count_tokens(output_text(content)))
    if output_tokens > request.max_tokens:
        # Like a real model: the reply is cut at max_tokens, and a cut tool call is dropped.
        text = output_text([b for b in content if isinstance(b, TextBlock)])[: request.max_tokens * CHARS_PER_TOKEN]
        content, stop_reason, output_tokens = (TextBlock(text),), "max_tokens", request.max_tokens
    return ProviderReply(
        content=content,
        stop_reason=stop_reason,
        usage=Usage(input_tokens=max(1, count_tokens(request_text(request))), output_tokens=output_tokens),
        provider_message_id="msg_off_" + _fingerprint(request)[:20],
    )


class OfflineProvider:
    name = "offline"

    def chat(self, *, model: ResolvedModel, request: ChatRequest, credential: ProviderCredential) -> ProviderReply:
        latency = int(getattr(settings, "LLM_OFFLINE_LATENCY_MS", 0))
        if latency > 0:
            time.sleep(latency / 1000)
        return offline_reply(request)


__all__ = [
    "Message",
    "OfflineProvider",
    "ScriptToolCall",
    "ScriptTurn",
    "count_tokens",
    "generic_answer",
    "match_all",
    "match_any",
    "match_first_user",
    "match_system",
    "match_tools",
    "offline_reply",
    "play",
    "register_script",
    "registered_scripts",
    "unregister_script",
]
