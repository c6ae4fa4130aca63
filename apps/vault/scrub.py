"""Remove secret values from anything before it is shown, stored or sent to a model.

The runtime calls this on every tool output and journal payload with every secret value the
call could see::

    from apps.vault.scrub import scrub
    clean = scrub(tool_output, secrets=[credential.value, access_token])

Strings are searched for each secret and for the encodings a tool most often echoes it in
(percent-encoding, base64, JSON escaping). Dict keys and values, lists, tuples and sets are
walked; other objects are returned unchanged. A very short secret redacts a lot of text:
that fails visibly, never by leaking. Known limit: a secret encoded together with
other text (``base64("user:" + secret)``) is not recognised; tools should not do that.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from django.views.decorators.debug import sensitive_variables

REDACTED = "[REDACTED]"
T = TypeVar("T")


def _variants(secret: str) -> set[str]:
    raw = secret.encode("utf-8")
    variants = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        variants.add(text)
        # Unpadded, as JWTs and URL-safe encoders emit it.
        variants.add(text.rstrip("="))
    return {v for v in variants if v}


class Scrubber:
    """A compiled scrubber for a fixed set of secrets; reuse it for many values."""

    __slots__ = ("_bytes_pattern", "_pattern")

    @sensitive_variables()
    def __init__(self, secrets: Iterable[str]):
        needles: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and secret:
                needles |= _variants(secret)
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(needles, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes_pattern = re.compile(b"|".join(re.escape(n.encode("utf-8")) for n in ordered)) if ordered else None

    def __repr__(self) -> str:
        return "<Scrubber>"

    def __bool__(self) -> bool:
        return self._pattern is not None

    def scrub(self, value: T) -> T:
        if self._pattern is None:
            return value
        return self._walk(value, 0)  # type: ignore[no-any-return]

    def _walk(self, value: Any, depth: int) -> Any:
        if depth > 64:
            return REDACTED  # absurdly deep structures are dropped, not trusted
        if isinstance(value, str):
            return self._pattern.sub(REDACTED, value)  # type: ignore[union-attr]
        if isinstance(value, (bytes, bytearray)):
            return self._bytes_pattern.sub(REDACTED.encode(), bytes(value))  # type: ignore[union-attr]
        if isinstance(value, dict):
            return {self._walk(k, depth + 1): self._walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(item, depth + 1) for item in value]
        if isinstance(value, tuple):
            return tuple(self._walk(item, depth + 1) for item in value)
        if isinstance(value, (set, frozenset)):
            return type(value)(self._walk(item, depth + 1) for item in value)
        return value

    def contains_secret(self, value: Any) -> bool:
        return self._pattern is not None and self.scrub(value) != value


@sensitive_variables()
def scrub(value: T, secrets: Iterable[str]) -> T:
    """``value`` with every occurrence of every secret (and its common encodings) replaced."""
    return Scrubber(secrets).scrub(value)
