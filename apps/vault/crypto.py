"""AES-256-GCM with a versioned key ring and associated data that binds a value to its place.

A sealed value is ``version (1 byte) | nonce (12 bytes) | ciphertext + tag (16 bytes)``.
The associated data names the workspace schema, the model, the field and the primary key,
so a ciphertext copied to another row, field or workspace fails authentication instead of
decrypting. The key ring is read from settings on every call (``VAULT_KEYS``,
``VAULT_CURRENT_KEY_VERSION``, ``VAULT_MIN_DECRYPT_VERSION``), so a test or a rotation can
change it without restarting anything.

Functions that hold plaintext are ``sensitive_variables``: Django's error reports (the
debug page, error emails) show their locals as stars.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + NONCE_BYTES
MIN_SEALED_BYTES = HEADER_BYTES + TAG_BYTES
_AAD_LABEL = "qd.vault.v1"


class VaultCryptoError(Exception):
    """A value could not be sealed or unsealed. Never carries plaintext."""


class DecryptionFailed(VaultCryptoError):
    """Tampered, truncated, or bound to another place (row, field, model, workspace)."""


class KeyVersionRefused(DecryptionFailed):
    """Sealed with a key version that is unknown or below VAULT_MIN_DECRYPT_VERSION."""


@dataclass(frozen=True)
class SealContext:
    """Where a value lives. Every part goes into the associated data."""

    schema: str
    model: str  # app_label.modelname
    field: str
    pk: str

    def aad(self) -> bytes:
        # JSON of a list is unambiguous: no choice of names can make two contexts collide.
        return json.dumps([_AAD_LABEL, self.schema, self.model, self.field, self.pk], separators=(",", ":")).encode()


@dataclass(frozen=True)
class KeyRing:
    keys: Mapping[int, bytes]
    current: int
    minimum: int

    @classmethod
    def from_settings(cls) -> KeyRing:
        return cls(
            keys=settings.VAULT_KEYS,
            current=int(settings.VAULT_CURRENT_KEY_VERSION),
            minimum=int(settings.VAULT_MIN_DECRYPT_VERSION),
        )


_ciphers: dict[tuple[int, bytes], AESGCM] = {}
_ciphers_lock = threading.Lock()


def _cipher(version: int, key: bytes) -> AESGCM:
    cached = _ciphers.get((version, key))
    if cached is None:
        with _ciphers_lock:
            cached = _ciphers.setdefault((version, key), AESGCM(key))
    return cached


def key_version(sealed: bytes) -> int:
    """The key version a sealed value was written with (no decryption)."""
    if len(sealed) < MIN_SEALED_BYTES:
        raise DecryptionFailed("The sealed value is truncated.")
    return sealed[0]


@sensitive_variables()
def seal(plaintext: str, *, context: SealContext, ring: KeyRing | None = None) -> bytes:
    ring = ring or KeyRing.from_settings()
    key = ring.keys.get(ring.current)
    if key is None:
        raise VaultCryptoError(f"The current key version {ring.current} is not in the key ring.")
    nonce = os.urandom(NONCE_BYTES)  # 96 random bits per write; rotate keys long before 2**32 writes
    body = _cipher(ring.current, key).encrypt(nonce, plaintext.encode("utf-8"), context.aad())
    return bytes([ring.current]) + nonce + body


@sensitive_variables()
def unseal(sealed: bytes, *, context: SealContext, ring: KeyRing | None = None) -> str:
    ring = ring or KeyRing.from_settings()
    sealed = bytes(sealed)
    version = key_version(sealed)
    if version < ring.minimum:
        raise KeyVersionRefused(f"Key version {version} is below the minimum decrypt version {ring.minimum}.")
    key = ring.keys.get(version)
    if key is None:
        raise KeyVersionRefused(f"Key version {version} is not in the key ring.")
    nonce, body = sealed[1:HEADER_BYTES], sealed[HEADER_BYTES:]
    try:
        plaintext = _cipher(version, key).decrypt(nonce, body, context.aad())
    except InvalidTag:
        raise DecryptionFailed(
            "The value does not authenticate: it was altered, or it belongs to another row, field or workspace."
        ) from None
    return plaintext.decode("utf-8")


@sensitive_variables()
def reseal(sealed: bytes, *, context: SealContext, ring: KeyRing | None = None) -> bytes:
    """Re-encrypt under the current key (same place, fresh nonce)."""
    ring = ring or KeyRing.from_settings()
    return seal(unseal(sealed, context=context, ring=ring), context=context, ring=ring)
