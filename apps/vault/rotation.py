"""Re-encrypt every encrypted value under the current key, workspace by workspace.

Every concrete model with an ``EncryptedTextField`` takes part, whichever app owns it: tenant
apps in each workspace schema, shared apps in the public schema. Each batch is one
transaction that locks its rows, re-encrypts them and journals ``vault.rotated``; a crash
loses at most the batch in flight. Rows already under the current key are never selected,
so running the command again resumes where it stopped. Rows that cannot be decrypted (a
retired or missing key, a damaged value) are skipped and reported, never overwritten.

When ``key_version_census`` shows no value under an old version, that version can be taken
out of ``QD_VAULT_KEYS`` (or fenced off first with ``QD_VAULT_MIN_DECRYPT_VERSION``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection as _connection
from django.db import models, transaction
from django_tenants.utils import get_public_schema_name, schema_context

from apps.audit.services import journal_append
from apps.tenants.models import Workspace

from .crypto import KeyRing, SealContext, VaultCryptoError, reseal
from .fields import EncryptedTextField, encrypted_fields

connection: Any = _connection
Progress = Callable[[str], None]


def _app_in(app_config_name: str, app_list: Iterable[str]) -> bool:
    return app_config_name in set(app_list)


def encrypted_columns(*, public: bool) -> list[tuple[type[models.Model], EncryptedTextField]]:
    """(model, field) pairs stored in workspace schemas (``public=False``) or in public."""
    pairs = []
    app_list = settings.SHARED_APPS if public else settings.TENANT_APPS
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or not _app_in(meta.app_config.name, app_list):
            continue
        for enc_field in encrypted_fields(model):
            pairs.append((model, enc_field))
    return sorted(pairs, key=lambda pair: (pair[0]._meta.label_lower, pair[1].name))


@dataclass
class ColumnReport:
    schema: str
    model: str
    field: str
    rotated: int = 0
    from_versions: Counter[int] = dataclasses.field(default_factory=Counter)
    failed: list[str] = dataclasses.field(default_factory=list)  # primary keys that did not decrypt


def _quote(name: str | None) -> str:
    assert name is not None
    return str(connection.ops.quote_name(name))


def rotate_column(
    model: type[models.Model],
    enc_field: EncryptedTextField,
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
    journal: bool = True,
) -> ColumnReport:
    """Rotate one column in the active schema, in keyset-ordered batches."""
    ring = KeyRing.from_settings()
    schema = str(getattr(connection, "schema_name", get_public_schema_name()))
    pk_column = model._meta.pk.column  # type: ignore[union-attr]
    table, column = _quote(model._meta.db_table), _quote(enc_field.column)
    report = ColumnReport(schema=schema, model=model._meta.label_lower, field=enc_field.name)
    last_pk: Any = None
    while True:
        with transaction.atomic():
            where = f"{column} IS NOT NULL AND get_byte({column}, 0) <> %s"
            params: list[Any] = [ring.current]
            if last_pk is not None:
                where += f" AND {_quote(pk_column)} > %s"
                params.append(last_pk)
            with connection.cursor() as cursor:
                # FOR UPDATE: an application write to the same row waits for this batch (or
                # this batch waits for it and then re-encrypts what it wrote).
                cursor.execute(
                    f"SELECT {_quote(pk_column)}, {column} FROM {table} WHERE {where} "  # noqa: S608
                    f"ORDER BY {_quote(pk_column)} LIMIT %s FOR UPDATE",
                    [*params, batch_size],
                )
                rows = cursor.fetchall()
            if not rows:
                return report
            last_pk = rows[-1][0]
            updates: list[tuple[bytes, Any]] = []
            versions: Counter[int] = Counter()
            for pk, blob in rows:
                blob = bytes(blob)
                context = SealContext(schema=schema, model=report.model, field=enc_field.name, pk=str(pk))
                try:
                    updates.append((reseal(blob, context=context, ring=ring), pk))
                    versions[blob[0]] += 1
                except VaultCryptoError:
                    report.failed.append(str(pk))
            if updates:
                with connection.cursor() as cursor:
                    cursor.executemany(
                        f"UPDATE {table} SET {column} = %s WHERE {_quote(pk_column)} = %s",  # noqa: S608
                        updates,
                    )
                if journal:
                    journal_append(
                        kind="vault.rotated",
                        payload={
                            "model": report.model,
                            "field": enc_field.name,
                            "rows": len(updates),
                            "to_version": ring.current,
                            "from_versions": {str(v): n for v, n in sorted(versions.items())},
                        },
                    )
            report.rotated += len(updates)
            report.from_versions.update(versions)
        if progress is not None:
            progress(
                f"{schema} {report.model}.{report.field}: {report.rotated} re-encrypted"
                + (f", {len(report.failed)} undecryptable" if report.failed else "")
            )


def rotate_schema(*, batch_size: int = 500, progress: Progress | None = None) -> list[ColumnReport]:
    """Rotate every encrypted column of the active schema."""
    schema = str(getattr(connection, "schema_name", get_public_schema_name()))
    public = schema == get_public_schema_name()
    # The journal lives in workspace schemas; public-schema rotations are reported, not journaled.
    return [
        rotate_column(model, enc_field, batch_size=batch_size, progress=progress, journal=not public)
        for model, enc_field in encrypted_columns(public=public)
    ]


def vault_rotate(
    *,
    workspaces: Iterable[Workspace] | None = None,
    include_public: bool = True,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> list[ColumnReport]:
    """Rotate every workspace (crosses workspaces on purpose: it is the operator's tool)."""
    reports: list[ColumnReport] = []
    if include_public and encrypted_columns(public=True):
        with schema_context(get_public_schema_name()):
            reports += rotate_schema(batch_size=batch_size, progress=progress)
    targets = list(workspaces) if workspaces is not None else list(Workspace.objects.order_by("schema_name"))
    for workspace in targets:
        if workspace.schema_name == get_public_schema_name():
            continue
        with schema_context(workspace.schema_name):
            if progress is not None:
                progress(f"{workspace.schema_name}: rotating to key version {KeyRing.from_settings().current}")
            reports += rotate_schema(batch_size=batch_size, progress=progress)
    return reports


def key_version_census(*, schema: str | None = None) -> dict[str, dict[int, int]]:
    """How many stored values use each key version, per ``model.field``, in the active
    (or given) schema."""
    with schema_context(schema or str(getattr(connection, "schema_name", get_public_schema_name()))):
        public = connection.schema_name == get_public_schema_name()
        census: dict[str, dict[int, int]] = {}
        for model, enc_field in encrypted_columns(public=public):
            column = _quote(enc_field.column)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT get_byte({column}, 0), count(*) FROM {_quote(model._meta.db_table)} "  # noqa: S608
                    f"WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1"
                )
                census[f"{model._meta.label_lower}.{enc_field.name}"] = {int(v): int(n) for v, n in cursor.fetchall()}
        return census
