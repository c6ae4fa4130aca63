"""One reader for configuration from the environment.

Every value may also come from a file named by ``<NAME>_FILE`` (Docker/Kubernetes secrets).
Malformed values raise ``ImproperlyConfigured`` at import time, naming the variable, so a
typo fails the process at start rather than on the first request that needs it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_MISSING = object()


def _raw(name: str) -> str | None:
    file_var = f"{name}_FILE"
    if file_var in os.environ:
        path = Path(os.environ[file_var])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{file_var}={path}: cannot read: {exc}") from exc
    return os.environ.get(name)


def env_str(name: str, default: object = _MISSING) -> str:
    value = _raw(name)
    if value is None or value == "":
        if default is _MISSING:
            raise ImproperlyConfigured(f"{name} must be set (or {name}_FILE)")
        return str(default)
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_database(name: str, default: object = _MISSING) -> dict[str, object]:
    """Parse ``postgres://user:password@host:port/dbname?options`` into a DATABASES entry.

    As with libpq, the host may be a Unix-socket directory: percent-encoded in place of the
    host (``postgres://u:p@%2Frun%2Fpostgresql/db``) or as a ``host`` option
    (``postgres://u:p@/db?host=/run/postgresql``), which wins over the one in the netloc.
    """
    url = env_str(name, default)
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"{name}: scheme must be postgres://, got {parsed.scheme!r}")
    options: dict[str, str] = {}
    for pair in filter(None, parsed.query.split("&")):
        key, _, val = pair.partition("=")
        options[key] = unquote(val)
    # A socket directory in the host's place, read as written (``hostname`` would lowercase it).
    netloc_host = parsed.netloc.rpartition("@")[2]
    socket_dir = unquote(netloc_host.partition(":")[0]) if netloc_host.startswith("%") else ""
    host = options.pop("host", "") or socket_dir or parsed.hostname or ""
    db_name = parsed.path.lstrip("/")
    if not db_name or not host:
        raise ImproperlyConfigured(f"{name}: needs a host and a database name")
    try:
        port = parsed.port or 5432
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: malformed port") from exc
    return {
        "NAME": db_name,
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(port),
        "OPTIONS": options,
    }


def env_redis_url(name: str, default: str) -> str:
    url = env_str(name, default)
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name}: scheme must be redis://, rediss:// or unix://")
    return url


def env_key_ring(name: str, default: object = _MISSING) -> Mapping[int, bytes]:
    """Parse a versioned key ring: ``1:<base64 32 bytes>,2:<base64 32 bytes>``.

    Each key must decode to exactly 32 bytes (AES-256). Versions are 1..255 because the
    version is stored as one byte in front of every ciphertext.
    """
    raw = env_str(name, default)
    ring: dict[int, bytes] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        version_text, sep, key_text = item.partition(":")
        if not sep:
            raise ImproperlyConfigured(f"{name}: entries must look like <version>:<base64 key>")
        try:
            version = int(version_text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: key version {version_text!r} is not an integer") from exc
        if not 1 <= version <= 255:
            raise ImproperlyConfigured(f"{name}: key version {version} is outside 1..255")
        try:
            key = base64.b64decode(key_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImproperlyConfigured(f"{name}: key version {version} is not valid base64") from exc
        if len(key) != 32:
            raise ImproperlyConfigured(f"{name}: key version {version} must be 32 bytes, got {len(key)}")
        if version in ring:
            raise ImproperlyConfigured(f"{name}: key version {version} appears twice")
        ring[version] = key
    if not ring:
        raise ImproperlyConfigured(f"{name}: at least one key is required")
    return ring
