"""Counting a request's input tokens before the call, for the worst-case reservation.

No network: the count is computed from the UTF-8 size of everything the model reads, at
three bytes per token plus per-message and tool-use overheads. Real tokenizers average about
four characters per token on English text and code, so this over-counts, which is the safe
side: a reservation is an upper bound, and the settlement charges the provider's real count.
"""

from __future__ import annotations

import json
import math

from .types import ChatRequest

BYTES_PER_TOKEN = 3
BASE_OVERHEAD = 16
PER_MESSAGE_OVERHEAD = 8
# Tool use adds a hidden system prompt on Anthropic models (a few hundred tokens).
TOOL_USE_OVERHEAD = 400
PER_TOOL_OVERHEAD = 16


def estimate_input_tokens(request: ChatRequest) -> int:
    size = len(request.system.encode())
    for message in request.messages:
        if isinstance(message.content, str):
            size += len(message.content.encode())
        else:
            size += len(json.dumps([b.to_dict() for b in message.content], separators=(",", ":")).encode())
    tokens = BASE_OVERHEAD + PER_MESSAGE_OVERHEAD * len(request.messages)
    if request.tools:
        size += len(json.dumps([t.to_dict() for t in request.tools], separators=(",", ":")).encode())
        tokens += TOOL_USE_OVERHEAD + PER_TOOL_OVERHEAD * len(request.tools)
    return tokens + math.ceil(size / BYTES_PER_TOKEN)
