"""The hash chain: canonical form of an entry, its HMAC, checkpoint signatures.

hash(n) = HMAC-SHA256(key, prev_hash(n) + "\\n" + canonical(n)), prev_hash(n) = hash(n-1), and
prev_hash(1) is a per-workspace genesis value (an HMAC of the schema name, so a journal copied
into another workspace does not verify). canonical(n) is the JSON array of every column of
the entry with sorted object keys, serialised by orjson: verification recomputes it from the
stored columns at well over 100,000 entries per second.

Writes chain in the database (the append function of migration audit/0005 computes the same
HMAC with pgcrypto, under the head's lock, from ``entry_document``); everything that checks
the chain recomputes it here, from the stored columns.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings

FORMAT_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SORT = orjson.OPT_SORT_KEYS


def key() -> bytes:
    """The HMAC key (also for the database's append function, a bound parameter of each call)."""
    return str(settings.JOURNAL_HMAC_KEY).encode()


def timestamp_micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def genesis_hash(schema_name: str, journal_id: object) -> str:
    message = f"quarterdeck-journal-genesis|{schema_name}|{journal_id or ''}".encode()
    return hmac.new(key(), message, hashlib.sha256).hexdigest()


def canonical(
    *,
    seq: int,
    ts_micros: int,
    kind: str,
    severity: str,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    crew_id: str | None,
    mission_id: str | None,
    agent_id: str | None,
    request_id: str | None,
    payload: Any,
) -> bytes:
    return canonical_values(
        seq,
        ts_micros,
        kind,
        severity,
        actor_kind,
        actor_id,
        actor_label,
        crew_id,
        mission_id,
        agent_id,
        request_id,
        payload,
    )


def canonical_values(
    seq: int,
    ts_micros: int,
    kind: str,
    severity: str,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    crew_id: str | None,
    mission_id: str | None,
    agent_id: str | None,
    request_id: str | None,
    payload: Any,
) -> bytes:
    """The canonical form, positional (verification calls this for every entry)."""
    return orjson.dumps(
        [
            FORMAT_VERSION,
            seq,
            ts_micros,
            kind,
            severity,
            actor_kind,
            actor_id,
            actor_label,
            crew_id,
            mission_id,
            agent_id,
            request_id,
            payload,
        ],
        option=_SORT,
    )


def entry_document(
    ts_micros: int,
    kind: str,
    severity: str,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    crew_id: str | None,
    mission_id: str | None,
    agent_id: str | None,
    request_id: str | None,
    payload: Any,
) -> str:
    """An entry as the append function takes it: the canonical form without its first two
    elements (format version and sequence number, which the function puts in front once it
    holds the head), so ``canonical_values(...) == b"[1," + seq + b"," + document[1:]``."""
    return orjson.dumps(
        [
            ts_micros,
            kind,
            severity,
            actor_kind,
            actor_id,
            actor_label,
            crew_id,
            mission_id,
            agent_id,
            request_id,
            payload,
        ],
        option=_SORT,
    ).decode()


def hasher() -> Callable[[str, bytes], str]:
    """A fast ``(prev_hash, canonical) -> hash`` bound to the current key; verification calls
    it for every entry. HMAC-SHA256 (RFC 2104) from the two keyed SHA-256 states computed
    once here, so each entry costs two state copies instead of keying OpenSSL's HMAC anew."""
    secret = key()
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(secret.translate(_IPAD))
    outer = hashlib.sha256(secret.translate(_OPAD))

    def entry_hash(prev_hash: str, body: bytes) -> str:
        digest = inner.copy()
        digest.update(prev_hash.encode() + b"\n" + body)
        result = outer.copy()
        result.update(digest.digest())
        return result.hexdigest()

    return entry_hash


_BLOCK = hashlib.sha256().block_size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hasher()(prev_hash, body)


def checkpoint_message(
    *, schema_name: str, journal_id: object, seq: int, hash: str, created_at: str, reason: str
) -> bytes:
    return (
        f"quarterdeck-journal-checkpoint|{schema_name}|{journal_id or ''}|{seq}|{hash}|{created_at}|{reason}".encode()
    )


def sign(message: bytes) -> str:
    return hmac.new(key(), message, hashlib.sha256).hexdigest()


def signature_valid(message: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(message), signature)


def payload_json(payload: Any) -> str:
    return orjson.dumps(payload, option=_SORT).decode()
