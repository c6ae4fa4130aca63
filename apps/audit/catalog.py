"""The typed catalog of journal entry kinds.

Every app declares the kinds it writes in ``apps/<app>/journal_kinds.py`` and registers them
from its ``AppConfig.ready()``. A kind names its default severity and its payload schema
(required and optional keys with their Python types); ``journal_append`` rejects a payload
that does not match, so a reader can rely on the shape of every entry of a kind.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from apps.core.errors import ValidationFailed

PAYLOAD_ERROR = "invalid_journal_payload"
UNKNOWN_KIND = "unknown_journal_kind"


class Severity(models.TextChoices):
    """Ordered from least to most severe; retention and compaction compare by ``rank``."""

    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    NOTICE = "notice", "Notice"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"

    @classmethod
    def rank(cls, value: str) -> int:
        try:
            return _RANK[value]
        except KeyError:
            raise ValidationFailed(
                f"Unknown severity {value!r}.", code="invalid_severity", details={"severity": list(_RANK)}
            ) from None

    @classmethod
    def at_most(cls, value: str) -> list[str]:
        """Severities up to and including ``value`` (the ones a policy may compact)."""
        limit = cls.rank(value)
        return [name for name, rank in _RANK.items() if rank <= limit]


_RANK: dict[str, int] = {value: index for index, value in enumerate(Severity.values)}

TypeSpec = type | tuple[type, ...]


@dataclass(frozen=True)
class EntryKind:
    name: str  # "budget.reserved"
    severity: str  # default severity, a Severity value
    required: Mapping[str, TypeSpec] = field(default_factory=dict)
    optional: Mapping[str, TypeSpec] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or "." not in self.name or len(self.name) > 64:
            raise ValueError(f"journal kind names look like 'area.event' (<= 64 chars), not {self.name!r}")
        if self.severity not in _RANK:
            raise ValueError(f"{self.name}: unknown severity {self.severity!r}")
        overlap = set(self.required) & set(self.optional)
        if overlap:
            raise ValueError(f"{self.name}: keys both required and optional: {sorted(overlap)}")
        for key, spec in [*self.required.items(), *self.optional.items()]:
            for typ in spec if isinstance(spec, tuple) else (spec,):
                if typ not in _ALLOWED_TYPES:
                    raise ValueError(f"{self.name}.{key}: type {typ!r} is not a JSON type")

    def validate(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Return the payload as a plain dict, or raise ValidationFailed naming the key."""
        if not isinstance(payload, Mapping):
            raise _payload_error(self, None, "The payload must be an object.")
        unknown = [key for key in payload if key not in self.required and key not in self.optional]
        if unknown:
            raise _payload_error(
                self, str(sorted(map(str, unknown))[0]), "Unknown key.", unknown=sorted(map(str, unknown))
            )
        for key in self.required:
            if key not in payload:
                raise _payload_error(self, key, "This key is required.")
        cleaned: dict[str, Any] = {}
        for key, value in payload.items():
            spec = self.required[key] if key in self.required else self.optional[key]
            if not _matches(value, spec):
                raise _payload_error(self, key, f"Expected {_type_names(spec)}, got {type(value).__name__}.")
            try:
                cleaned[key] = _clean(value)
            except _Unstorable as exc:
                raise _payload_error(self, key, str(exc)) from None
        return cleaned


_ALLOWED_TYPES: frozenset[type] = frozenset({str, int, float, bool, list, dict, type(None)})


def _type_names(spec: TypeSpec) -> str:
    types = spec if isinstance(spec, tuple) else (spec,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _matches(value: Any, spec: TypeSpec) -> bool:
    types = spec if isinstance(spec, tuple) else (spec,)
    for typ in types:
        if typ is bool:
            if isinstance(value, bool):
                return True
        elif typ is int:
            # bool is a subclass of int in Python, never in a payload schema.
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif typ is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif typ is type(None):
            if value is None:
                return True
        elif isinstance(value, typ):
            return True
    return False


# Floats at or above this magnitude come back from jsonb as integers, which would change the
# canonical form the hash covers; such numbers must be sent as integers or strings.
_FLOAT_LIMIT = 1e15


class _Unstorable(ValueError):
    pass


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` as it will read back from jsonb (tuples become lists, -0.0 becomes 0.0, since
    the hash covers what verification reads back), or _Unstorable saying why it cannot be
    stored and hashed faithfully."""
    if depth > 32:
        raise _Unstorable("Nested too deeply.")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise _Unstorable("Integers must fit in 64 bits; use a string.")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unstorable("NaN and infinity are not JSON.")
        if abs(value) >= _FLOAT_LIMIT:
            raise _Unstorable("Floats this large are not stored exactly; use an integer or a string.")
        return value + 0.0  # -0.0 + 0.0 == 0.0: jsonb has no negative zero
    if isinstance(value, str):
        _check_string(value)
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(item, depth + 1) for item in value]
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unstorable("Object keys must be strings.")
            _check_string(key)
            cleaned[key] = _clean(item, depth + 1)
        return cleaned
    raise _Unstorable(f"{type(value).__name__} is not a JSON value.")


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise _Unstorable("Strings may not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unstorable("Strings must be valid Unicode (no lone surrogates).") from None


def _payload_error(kind: EntryKind, key: str | None, message: str, **extra: Any) -> ValidationFailed:
    details: dict[str, Any] = {"kind": kind.name, **extra}
    if key is not None:
        details["key"] = key
        details["payload"] = {key: [message]}
    text = f"Journal payload for {kind.name} is not valid" + (f": {key}: {message}" if key else f": {message}")
    return ValidationFailed(text, code=PAYLOAD_ERROR, details=details)


_registry: dict[str, EntryKind] = {}
_lock = threading.Lock()


def register(*kinds: EntryKind) -> None:
    """Add kinds to the catalog. Re-registering an identical kind is a no-op (``ready()`` may
    run twice); redefining a name differently is a programming error."""
    with _lock:
        for kind in kinds:
            existing = _registry.get(kind.name)
            if existing is not None and existing != kind:
                raise ValueError(f"journal kind {kind.name!r} is already registered with a different definition")
            _registry[kind.name] = kind


def get_kind(name: str) -> EntryKind:
    try:
        return _registry[name]
    except KeyError:
        raise ValidationFailed(
            f"Unknown journal entry kind {name!r}.", code=UNKNOWN_KIND, details={"kind": name}
        ) from None


def is_registered(name: str) -> bool:
    return name in _registry


def all_kinds() -> list[EntryKind]:
    return sorted(_registry.values(), key=lambda kind: kind.name)
