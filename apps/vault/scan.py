"""Look for plaintext secrets where they must never be: every table of the given schemas
(including the journal), every text, JSON and binary column.

``known_plaintexts()`` decrypts every encrypted value of the active workspace (secrets,
OAuth client secrets and tokens, and any other app's encrypted fields); scanning for those
after a demo or a benchmark run proves none leaked into a row, a payload or a log table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.db import connection as _connection
from django.views.decorators.debug import sensitive_variables
from django_tenants.utils import get_public_schema_name, schema_context

from .crypto import DecryptionFailed
from .rotation import encrypted_columns

connection: Any = _connection

_TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "xml", "tsvector")
MIN_NEEDLE_CHARS = 6  # shorter values match by coincidence; they cannot be scanned for


@dataclass(frozen=True)
class PlaintextHit:
    schema: str
    table: str
    column: str
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@sensitive_variables()
def known_plaintexts() -> list[str]:
    """Every decryptable encrypted value of the active schema."""
    public = connection.schema_name == get_public_schema_name()
    values: list[str] = []
    for model, enc_field in encrypted_columns(public=public):
        for obj in model._default_manager.exclude(**{f"{enc_field.name}__isnull": True}).only(
            model._meta.pk.name,
            enc_field.name,  # type: ignore[union-attr]
        ):
            sealed = getattr(obj, enc_field.attname)
            try:
                values.append(sealed.reveal())
            except DecryptionFailed:
                continue
    return values


def _columns(schema: str) -> list[tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE' "
            "AND (c.data_type = ANY(%s) OR c.data_type = 'bytea') ORDER BY 1, 2",
            [schema, list(_TEXT_TYPES)],
        )
        return [(str(t), str(c), str(d)) for t, c, d in cursor.fetchall()]


@sensitive_variables()
def scan_plaintext(*, needles: Iterable[str], schemas: Iterable[str]) -> list[PlaintextHit]:
    """Rows per (schema, table, column) containing any needle, as text, JSON-escaped text or
    UTF-8 bytes."""
    plain = sorted({n for n in needles if isinstance(n, str) and len(n) >= MIN_NEEDLE_CHARS})
    if not plain:
        return []
    text_variants = sorted({v for n in plain for v in (n, json.dumps(n)[1:-1])})
    byte_variants = [n.encode("utf-8") for n in plain]
    quote = connection.ops.quote_name
    hits: list[PlaintextHit] = []
    for schema in schemas:
        for table, column, data_type in _columns(schema):
            target = f"{quote(schema)}.{quote(table)}"
            if data_type == "bytea":
                condition = " OR ".join([f"position(%s::bytea in {quote(column)}) > 0"] * len(byte_variants))
                params: list[Any] = list(byte_variants)
            else:
                condition = " OR ".join([f"strpos({quote(column)}::text, %s) > 0"] * len(text_variants))
                params = list(text_variants)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM {target} WHERE {condition}", params)  # noqa: S608
                row = cursor.fetchone()
            count = int(row[0]) if row else 0
            if count:
                hits.append(PlaintextHit(schema=schema, table=table, column=column, rows=count))
    return hits


def scan_workspace(
    *, schema: str, extra_needles: Iterable[str] = (), include_public: bool = True
) -> list[PlaintextHit]:
    """Scan ``schema`` (and public) for the workspace's own decrypted values plus ``extra_needles``."""
    with schema_context(schema):
        needles = [*known_plaintexts(), *extra_needles]
    schemas = [schema, *([get_public_schema_name()] if include_public else [])]
    return scan_plaintext(needles=needles, schemas=schemas)
