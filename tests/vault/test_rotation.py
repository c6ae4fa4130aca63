"""Key rotation: mixed versions, batches, resume, journal, retiring the old key."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit.models import JournalEntry
from apps.tenants.models import Workspace
from apps.vault.crypto import DecryptionFailed
from apps.vault.models import OAuthConnection, Secret
from apps.vault.rotation import key_version_census, vault_rotate

from .conftest import make_secret, unique


def versions(model: Any, field: str) -> dict[int, int]:
    return key_version_census().get(f"{model._meta.label_lower}.{field}", {})


@pytest.fixture
def two_keys(settings: Any) -> Any:
    settings.VAULT_KEYS = {1: settings.VAULT_KEYS[1], 2: os.urandom(32)}
    settings.VAULT_CURRENT_KEY_VERSION = 1
    return settings


def test_rotation_re_encrypts_mixed_versions_to_the_current_key(in_acme: Workspace, two_keys: Any) -> None:
    old = [make_secret(value=f"old-value-{i}") for i in range(5)]
    conn = OAuthConnection.objects.create(
        provider=unique("crm"),
        client_id="c",
        client_secret="client-old",
        token_url="http://127.0.0.1/t",
        refresh_token="refresh-old",
    )
    two_keys.VAULT_CURRENT_KEY_VERSION = 2
    new = [make_secret(value=f"new-value-{i}") for i in range(2)]
    before = versions(Secret, "value")
    assert before[1] >= 5 and before[2] == 2

    lines: list[str] = []
    reports = vault_rotate(workspaces=[in_acme], batch_size=2, progress=lines.append)
    by_column = {(r.model, r.field): r for r in reports}
    assert by_column[("vault.secret", "value")].rotated == before[1]
    assert by_column[("vault.secret", "value")].from_versions == {1: before[1]}
    assert by_column[("vault.oauthconnection", "client_secret")].rotated >= 1
    assert versions(Secret, "value") == {2: sum(before.values())}
    assert any("re-encrypted" in line for line in lines)

    # The old key can now be fenced off: everything still decrypts.
    two_keys.VAULT_MIN_DECRYPT_VERSION = 2
    for i, secret in enumerate(old):
        assert Secret.objects.get(pk=secret.pk).value.reveal() == f"old-value-{i}"
    assert Secret.objects.get(pk=new[0].pk).value.reveal() == "new-value-0"
    conn.refresh_from_db()
    assert conn.client_secret.reveal() == "client-old"  # type: ignore[union-attr]
    assert conn.refresh_token.reveal() == "refresh-old"  # type: ignore[union-attr]

    entries = JournalEntry.objects.filter(kind="vault.rotated", payload__model="vault.secret")
    assert sum(e.payload["rows"] for e in entries) == before[1]
    assert all(e.payload["to_version"] == 2 for e in entries)


def test_rotation_resumes_after_an_interruption(in_acme: Workspace, two_keys: Any) -> None:
    for i in range(6):
        make_secret(value=f"resume-value-{i}")
    two_keys.VAULT_CURRENT_KEY_VERSION = 2
    total = versions(Secret, "value")[1]

    def crash_after_first_batch(line: str) -> None:
        if "re-encrypted" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vault_rotate(workspaces=[in_acme], batch_size=2, progress=crash_after_first_batch)
    assert versions(Secret, "value")[2] >= 2  # the first batch committed (its savepoint here)
    reports = vault_rotate(workspaces=[in_acme], batch_size=2)
    secret_report = next(r for r in reports if r.model == "vault.secret")
    assert secret_report.rotated == total - 2
    assert versions(Secret, "value") == {2: total}


def test_undecryptable_rows_are_reported_and_left_alone(in_acme: Workspace, two_keys: Any) -> None:
    good, bad = make_secret(value="good-one"), make_secret(value="bad-one")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vault_secret SET value = set_byte(value, 20, get_byte(value, 20) # 1) WHERE id = %s", [bad.pk]
        )
        cursor.execute("SELECT value FROM vault_secret WHERE id = %s", [bad.pk])
        damaged = bytes(cursor.fetchone()[0])
    two_keys.VAULT_CURRENT_KEY_VERSION = 2
    report = next(r for r in vault_rotate(workspaces=[in_acme]) if r.model == "vault.secret")
    assert str(bad.pk) in report.failed
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM vault_secret WHERE id = %s", [bad.pk])
        assert bytes(cursor.fetchone()[0]) == damaged
    assert Secret.objects.get(pk=good.pk).value.key_version == 2
    with pytest.raises(DecryptionFailed):
        Secret.objects.get(pk=bad.pk).value.reveal()


def test_the_command_prints_progress_and_a_census(in_acme: Workspace, two_keys: Any, capsys: Any) -> None:
    make_secret(value="command-value")
    two_keys.VAULT_CURRENT_KEY_VERSION = 2
    call_command("vault_rotate", "--workspace", in_acme.slug, "--batch-size", "50")
    out = capsys.readouterr().out
    assert "re-encrypted" in out and "vault.secret.value" in out
    call_command("vault_rotate", "--workspace", in_acme.slug, "--status")
    assert "v2" in capsys.readouterr().out
