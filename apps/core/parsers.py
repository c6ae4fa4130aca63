"""The API's JSON parser: DRF's, refusing text PostgreSQL cannot store (see apps.core.text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .text import PROBLEM, first_unstorable


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        path = first_unstorable(data)
        if path is not None:
            raise ParseError(f"JSON parse error - {PROBLEM} (at {path})")
        return data
