from __future__ import annotations

import base64
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env


def test_missing_required_value_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QD_TEST_MISSING", raising=False)
    with pytest.raises(ImproperlyConfigured, match="QD_TEST_MISSING must be set"):
        env.env_str("QD_TEST_MISSING")


def test_values_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("QD_TEST_SECRET_FILE", str(secret))
    assert env.env_str("QD_TEST_SECRET") == "from-a-file"


def test_unreadable_file_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QD_TEST_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        env.env_str("QD_TEST_SECRET")


@pytest.mark.parametrize("value", ["maybe", "2", "yess"])
def test_malformed_boolean_fails(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("QD_TEST_BOOL", value)
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env.env_bool("QD_TEST_BOOL")


def test_malformed_integer_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QD_TEST_INT", "12a")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env.env_int("QD_TEST_INT", 1)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:p@h/db",
        "postgres://u:p@h",
        "postgres://u:p@h:notaport/db",
        "postgres:///db",
        "postgres://u:p@%2Fsock/",
        "postgres://u:p@/db?host=",
    ],
)
def test_malformed_database_url_fails(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("QD_TEST_DB", url)
    with pytest.raises(ImproperlyConfigured):
        env.env_database("QD_TEST_DB")


def test_database_url_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QD_TEST_DB", "postgres://u%40x:p%2Fw@db.local:6543/qd?sslmode=require")
    parsed = env.env_database("QD_TEST_DB")
    assert parsed["USER"] == "u@x" and parsed["PASSWORD"] == "p/w"
    assert parsed["HOST"] == "db.local" and parsed["PORT"] == "6543" and parsed["NAME"] == "qd"
    assert parsed["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@%2Frun%2FPostgres%20Sock/qd",
        "postgres://u:p@%2Frun%2FPostgres%20Sock:5432/qd",
        "postgres://u:p@/qd?host=%2Frun%2FPostgres%20Sock",
        "postgres://u:p@elsewhere/qd?host=/run/Postgres%20Sock",
    ],
)
def test_database_url_can_name_a_unix_socket_directory(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("QD_TEST_DB", url)
    parsed = env.env_database("QD_TEST_DB")
    # The path as written: case kept, percent-decoded, and not left among the options.
    assert parsed["HOST"] == "/run/Postgres Sock" and parsed["NAME"] == "qd" and parsed["PORT"] == "5432"
    assert parsed["USER"] == "u" and parsed["PASSWORD"] == "p" and parsed["OPTIONS"] == {}


def _key(n: int = 32) -> str:
    return base64.b64encode(bytes(range(n))).decode()


def test_key_ring_parses_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QD_TEST_KEYS", f"1:{_key()},2:{_key()}")
    assert sorted(env.env_key_ring("QD_TEST_KEYS")) == [1, 2]


@pytest.mark.parametrize(
    "value,message",
    [
        (f"1:{_key(16)}", "must be 32 bytes"),
        ("1:not-base64!!", "not valid base64"),
        (f"0:{_key()}", "outside 1..255"),
        (f"x:{_key()}", "not an integer"),
        (f"1:{_key()},1:{_key()}", "appears twice"),
        (_key(), "entries must look like"),
    ],
)
def test_malformed_key_ring_fails(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("QD_TEST_KEYS", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        env.env_key_ring("QD_TEST_KEYS")
