"""Vault test helpers: the acme schema active, factories with unique names, a key ring."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from apps.vault import services
from apps.vault.models import Grant, Secret


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _rules_judge(settings: Any) -> None:
    # The model-backed judge is exercised explicitly; everything else uses the fixed rules.
    settings.VAULT_JUDGE = "rules"
    settings.VAULT_OAUTH_BACKOFF_MS = 5


@pytest.fixture
def in_acme(db: None, acme: Workspace) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


@pytest.fixture
def in_globex(db: None, globex: Workspace) -> Iterator[Workspace]:
    with workspace_schema(globex):
        yield globex


def make_secret(*, tier: str = "L1", value: str | None = None, **extra: Any) -> Secret:
    return services.secret_create(
        name=extra.pop("name", unique("secret")),
        value=value if value is not None else "sk_live_" + uuid.uuid4().hex,
        tier=tier,
        **extra,
    )


def make_grant(secret: Secret, *, crew_id: uuid.UUID | None = None, **extra: Any) -> Grant:
    if "subject_type" not in extra:
        extra["subject_type"] = "crew"
        extra["subject_id"] = crew_id or uuid.uuid4()
    return services.grant_create(secret=secret, **extra)
