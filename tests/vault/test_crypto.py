"""The encrypted field: AES-256-GCM, bound to workspace, model, field and primary key."""

from __future__ import annotations

import pickle
import uuid
from typing import Any

import pytest
from django.core.exceptions import FieldError
from django.db import connection, transaction

from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.vault.crypto import (
    MIN_SEALED_BYTES,
    DecryptionFailed,
    KeyRing,
    KeyVersionRefused,
    SealContext,
    key_version,
    seal,
    unseal,
)
from apps.vault.models import OAuthConnection, Secret

from .conftest import make_secret, new_key


def _raw(table: str, column: str, pk: Any) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


def _write_raw(table: str, column: str, pk: Any, value: bytes) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


CTX = SealContext(schema="w_acme", model="vault.secret", field="value", pk=str(uuid.uuid4()))


def test_each_write_uses_a_fresh_nonce_and_the_current_key_version() -> None:
    a, b = seal("same", context=CTX), seal("same", context=CTX)
    assert a != b
    assert a[1:13] != b[1:13]
    assert key_version(a) == KeyRing.from_settings().current
    assert len(a) == MIN_SEALED_BYTES + len(b"same")
    assert unseal(a, context=CTX) == "same"


@pytest.mark.parametrize("part", ["schema", "model", "field", "pk"])
def test_a_ciphertext_does_not_decrypt_in_another_place(part: str) -> None:
    sealed = seal("hunter2-secret", context=CTX)
    moved = SealContext(**{**CTX.__dict__, part: "elsewhere"})
    with pytest.raises(DecryptionFailed):
        unseal(sealed, context=moved)


@pytest.mark.parametrize("offset", [0 + 1, 5, 13, -1])
def test_any_flipped_byte_fails_authentication(offset: int) -> None:
    sealed = bytearray(seal("hunter2-secret", context=CTX))
    sealed[offset] ^= 0x01
    with pytest.raises(DecryptionFailed):
        unseal(bytes(sealed), context=CTX)


def test_truncated_ciphertext_fails() -> None:
    with pytest.raises(DecryptionFailed):
        unseal(seal("x", context=CTX)[:20], context=CTX)


def test_versions_below_the_minimum_or_unknown_are_refused(settings: Any) -> None:
    old_key, new = settings.VAULT_KEYS[1], new_key()
    import base64

    settings.VAULT_KEYS = {1: old_key, 2: base64.b64decode(new)}
    sealed_v1 = seal("old secret", context=CTX)
    settings.VAULT_CURRENT_KEY_VERSION = 2
    sealed_v2 = seal("new secret", context=CTX)
    assert (key_version(sealed_v1), key_version(sealed_v2)) == (1, 2)
    assert unseal(sealed_v1, context=CTX) == "old secret"  # both readable during rotation
    settings.VAULT_MIN_DECRYPT_VERSION = 2
    with pytest.raises(KeyVersionRefused):
        unseal(sealed_v1, context=CTX)
    assert unseal(sealed_v2, context=CTX) == "new secret"
    settings.VAULT_KEYS = {2: base64.b64decode(new)}
    settings.VAULT_MIN_DECRYPT_VERSION = 1
    with pytest.raises(KeyVersionRefused):
        unseal(sealed_v1, context=CTX)


# --- the model field -------------------------------------------------------------------------


def test_the_database_holds_only_ciphertext(in_acme: Workspace) -> None:
    secret = make_secret(value="plain-text-value-123")
    raw = _raw("vault_secret", "value", secret.pk)
    assert b"plain-text-value-123" not in raw
    assert raw[0] == KeyRing.from_settings().current
    assert Secret.objects.get(pk=secret.pk).value.reveal() == "plain-text-value-123"


def test_the_attribute_never_prints_its_plaintext(in_acme: Workspace) -> None:
    secret = make_secret(value="plain-text-value-123")
    loaded = Secret.objects.get(pk=secret.pk)
    for text in (repr(loaded.value), str(loaded.value), f"{loaded.value}", repr(loaded.__dict__)):
        assert "plain-text-value-123" not in text
    unsaved = Secret(name="x", value="plain-text-value-456")
    assert "plain-text-value-456" not in repr(unsaved.value) + repr(unsaved.__dict__)
    with pytest.raises(TypeError):
        pickle.dumps(loaded.value)


def test_a_value_copied_to_another_row_does_not_decrypt(in_acme: Workspace) -> None:
    a = make_secret(value="value-of-row-a")
    b = make_secret(value="value-of-row-b")
    _write_raw("vault_secret", "value", b.pk, _raw("vault_secret", "value", a.pk))
    with pytest.raises(DecryptionFailed):
        Secret.objects.get(pk=b.pk).value.reveal()
    assert Secret.objects.get(pk=a.pk).value.reveal() == "value-of-row-a"


def test_a_value_copied_to_another_field_does_not_decrypt(in_acme: Workspace) -> None:
    conn = OAuthConnection.objects.create(
        provider="copyfield",
        client_id="c",
        client_secret="client-secret-1",
        token_url="http://127.0.0.1/t",
        access_token="access-token-1",
    )
    _write_raw(
        "vault_oauthconnection", "refresh_token", conn.pk, _raw("vault_oauthconnection", "client_secret", conn.pk)
    )
    loaded = OAuthConnection.objects.get(pk=conn.pk)
    assert loaded.client_secret.reveal() == "client-secret-1"
    with pytest.raises(DecryptionFailed):
        loaded.refresh_token.reveal()


def test_a_value_copied_to_another_workspace_does_not_decrypt(db: None, acme: Workspace, globex: Workspace) -> None:
    pk = uuid.uuid4()
    with workspace_schema(acme):
        Secret.objects.create(id=pk, name="shared-name", value="acme-only-value")
        raw = _raw("vault_secret", "value", pk)
    with workspace_schema(globex):
        Secret.objects.create(id=pk, name="shared-name", value="globex-value")
        _write_raw("vault_secret", "value", pk, raw)
        with pytest.raises(DecryptionFailed):
            Secret.objects.get(pk=pk).value.reveal()


def test_tampered_ciphertext_in_the_table_fails(in_acme: Workspace) -> None:
    secret = make_secret(value="tamper-me-please")
    raw = bytearray(_raw("vault_secret", "value", secret.pk))
    raw[-3] ^= 0x80
    _write_raw("vault_secret", "value", secret.pk, bytes(raw))
    with pytest.raises(DecryptionFailed):
        Secret.objects.get(pk=secret.pk).value.reveal()


def test_plaintext_cannot_bypass_save(in_acme: Workspace) -> None:
    secret = make_secret()
    with pytest.raises(TypeError), transaction.atomic():
        Secret.objects.filter(pk=secret.pk).update(value="sneaky-plaintext")
    with pytest.raises(FieldError), transaction.atomic():
        list(Secret.objects.filter(value="anything"))
    assert Secret.objects.filter(value__isnull=False, pk=secret.pk).exists()


def test_refresh_and_deferred_loading_keep_the_value(in_acme: Workspace) -> None:
    secret = make_secret(value="deferred-value-1")
    deferred = Secret.objects.defer("value").get(pk=secret.pk)
    assert deferred.value.reveal() == "deferred-value-1"
    secret.value = "changed-value-2"
    secret.save()
    deferred.refresh_from_db()
    assert deferred.value.reveal() == "changed-value-2"
    assert deferred.value.is_saved


def test_the_primary_key_must_be_known_before_encrypting() -> None:
    field = Secret._meta.get_field("value")
    with pytest.raises(ValueError, match="primary key"):
        field.seal_context(schema="w_acme", pk=None)  # type: ignore[attr-defined]
