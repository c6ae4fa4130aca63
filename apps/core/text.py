"""Text that PostgreSQL cannot store: the NUL character (not allowed in text or jsonb) and
unpaired UTF-16 surrogates (JSON may escape them, ``"\\ud800"``, but they have no UTF-8 form).

Input carrying them is refused where it enters (the API's JSON parser, the query string), with
a clear error, instead of failing in the database as a server error.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
PROBLEM = "Text cannot contain NUL (U+0000) characters or unpaired surrogates."


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def first_unstorable(value: Any, path: str = "$") -> str | None:
    """The JSON path of the first string (or object key) in ``value`` that cannot be stored."""
    if isinstance(value, str):
        return None if is_storable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not is_storable(key):
                return path
            found = first_unstorable(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{path}[{index}]")
            if found:
                return found
    return None
