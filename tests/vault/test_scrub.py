"""The scrubber the runtime calls on tool outputs and journal payloads."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from apps.vault.scrub import REDACTED, Scrubber, scrub

SECRET = 'sk_live_4f9a+/="x'


def test_strings_are_scrubbed_in_nested_structures() -> None:
    value = {
        "status": 200,
        "headers": {"Authorization": f"Bearer {SECRET}"},
        SECRET: ["ok", (f"token={SECRET}", 3)],
        "tags": {"a", SECRET},
        "ok": True,
        "none": None,
    }
    clean = scrub(value, [SECRET])
    assert SECRET not in json.dumps(clean, default=list)
    assert clean["headers"]["Authorization"] == f"Bearer {REDACTED}"
    assert clean[REDACTED][1] == (f"token={REDACTED}", 3)
    assert clean["tags"] == {"a", REDACTED}
    assert (clean["status"], clean["ok"], clean["none"]) == (200, True, None)


def test_common_encodings_of_a_secret_are_scrubbed() -> None:
    encodings = [
        quote(SECRET, safe=""),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        json.dumps(SECRET)[1:-1],
    ]
    for encoded in encodings:
        assert scrub(f"before {encoded} after", [SECRET]) == f"before {REDACTED} after", encoded
    assert json.dumps({"k": SECRET}) != scrub(json.dumps({"k": SECRET}), [SECRET])


def test_bytes_are_scrubbed() -> None:
    assert scrub(b"x" + SECRET.encode() + b"y", [SECRET]) == b"x" + REDACTED.encode() + b"y"


def test_the_longest_secret_wins_and_overlaps_are_removed_whole() -> None:
    assert scrub("abc-secret-long", ["abc-secret", "abc-secret-long"]) == REDACTED


def test_nothing_to_scrub_returns_the_value_unchanged() -> None:
    value = {"a": [1, 2]}
    assert scrub(value, []) is value
    assert scrub(value, ["", None]) is value  # type: ignore[list-item]


def test_a_scrubber_never_prints_its_secrets() -> None:
    scrubber = Scrubber([SECRET])
    assert SECRET not in repr(scrubber)
    assert scrubber.contains_secret({"x": SECRET}) and not scrubber.contains_secret({"x": "fine"})
