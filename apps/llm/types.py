"""Provider-neutral chat-with-tools types: what the runtime sends and gets back, whatever the
provider. Plain frozen dataclasses with ``to_dict``/``from_dict`` so they survive JSON (the
call record, LangGraph checkpoints)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant"]
StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"]
STOP_REASONS: frozenset[str] = frozenset(
    {"end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"}
)


@dataclass(frozen=True)
class TextBlock:
    text: str
    type: Literal["text"] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class ToolUseBlock:
    """The model asks for a tool call. ``arguments`` is already parsed JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    type: Literal["tool_use"] = "tool_use"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tool_use", "id": self.id, "name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class ToolResultBlock:
    """The outcome of a tool call, sent back in a user message."""

    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "tool_result",
            "tool_use_id": self.tool_use_id,
            "content": self.content,
            "is_error": self.is_error,
        }


ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock


def block_from_dict(data: Mapping[str, Any]) -> ContentBlock:
    kind = data.get("type")
    if kind == "text":
        return TextBlock(text=str(data["text"]))
    if kind == "tool_use":
        return ToolUseBlock(id=str(data["id"]), name=str(data["name"]), arguments=dict(data.get("arguments") or {}))
    if kind == "tool_result":
        return ToolResultBlock(
            tool_use_id=str(data["tool_use_id"]),
            content=str(data.get("content", "")),
            is_error=bool(data.get("is_error")),
        )
    raise ValueError(f"unknown content block type {kind!r}")


@dataclass(frozen=True)
class Message:
    role: Role
    content: str | tuple[ContentBlock, ...]

    @property
    def blocks(self) -> tuple[ContentBlock, ...]:
        return (TextBlock(self.content),) if isinstance(self.content, str) else self.content

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.blocks if isinstance(b, TextBlock))

    def to_dict(self) -> dict[str, Any]:
        content: Any = self.content if isinstance(self.content, str) else [b.to_dict() for b in self.content]
        return {"role": self.role, "content": content}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        content = data["content"]
        if isinstance(content, str):
            return cls(role=data["role"], content=content)
        return cls(role=data["role"], content=tuple(block_from_dict(b) for b in content))

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(role="user", content=text)

    @classmethod
    def assistant(cls, *blocks: ContentBlock) -> Message:
        return cls(role="assistant", content=tuple(blocks))

    @classmethod
    def tool_results(cls, *results: ToolResultBlock) -> Message:
        return cls(role="user", content=tuple(results))


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": dict(self.input_schema)}


@dataclass(frozen=True)
class ChatRequest:
    """One model turn. ``model`` is normally left empty: routing decides (see CallContext)."""

    messages: Sequence[Message]
    system: str = ""
    tools: Sequence[ToolSpec] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    stop_sequences: Sequence[str] = ()
    # Mark the system prompt and tool definitions cacheable (Anthropic prompt caching).
    cache_prompt: bool = False
    model: str = ""  # an explicit model wins over the context's preferences

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not self.messages:
            raise ValueError("a chat request needs at least one message")

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(tool.name for tool in self.tools)

    @property
    def assistant_turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "assistant")

    @property
    def first_user_text(self) -> str:
        return next((m.text for m in self.messages if m.role == "user" and m.text), "")

    @property
    def last_user_text(self) -> str:
        return next((m.text for m in reversed(self.messages) if m.role == "user" and m.text), "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": [m.to_dict() for m in self.messages],
            "system": self.system,
            "tools": [t.to_dict() for t in self.tools],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop_sequences": list(self.stop_sequences),
            "cache_prompt": self.cache_prompt,
            "model": self.model,
        }


@dataclass(frozen=True)
class Usage:
    """Tokens as the provider bills them. ``input_tokens`` excludes cached tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(**{k: int(data.get(k) or 0) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class ProviderReply:
    """What a provider returns, before the gateway prices and records it."""

    content: tuple[ContentBlock, ...]
    stop_reason: str
    usage: Usage
    provider_message_id: str = ""


@dataclass(frozen=True)
class ChatResponse:
    content: tuple[ContentBlock, ...]
    stop_reason: str
    usage: Usage
    model: str  # the catalog model that answered (after routing and fallbacks)
    provider: str
    cost_microusd: int
    request_id: str
    route_reason: str = ""
    price_id: int | None = None
    replayed: bool = False  # True when returned from the call record for a repeated request_id
    latency_ms: float = 0.0  # time spent in the gateway call, provider included
    provider_ms: float = 0.0  # of which waiting for the provider(s)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(b.id, b.name, b.arguments) for b in self.content if isinstance(b, ToolUseBlock)]

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    def as_message(self) -> Message:
        """The assistant message to append to the conversation for the next turn."""
        return Message(role="assistant", content=self.content)

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": [b.to_dict() for b in self.content],
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "provider": self.provider,
            "cost_microusd": self.cost_microusd,
            "request_id": self.request_id,
            "route_reason": self.route_reason,
            "price_id": self.price_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, replayed: bool = False) -> ChatResponse:
        return cls(
            content=tuple(block_from_dict(b) for b in data["content"]),
            stop_reason=str(data["stop_reason"]),
            usage=Usage.from_dict(data["usage"]),
            model=str(data["model"]),
            provider=str(data["provider"]),
            cost_microusd=int(data["cost_microusd"]),
            request_id=str(data["request_id"]),
            route_reason=str(data.get("route_reason", "")),
            price_id=data.get("price_id"),
            replayed=replayed,
        )


@dataclass(frozen=True)
class CallContext:
    """Who is calling and what they prefer. The runtime fills it from the agent, crew and mission.

    ``request_id`` makes the call idempotent: the same id returns the recorded response
    instead of calling (and charging) again. Use one id per logical model turn (e.g. the
    mission id, step and attempt-independent turn number).
    """

    crew_id: uuid.UUID | None = None
    mission_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    request_id: str | None = None
    agent_model: str | None = None
    crew_model: str | None = None
    purpose: str = ""  # free text for the journal ("plan", "answer ticket")
