from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from apps.audit import catalog
from apps.audit.replay import MISSION_CONTRACT_KINDS
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


@pytest.fixture(autouse=True)
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    """Each test exports checkpoints to its own directory: rolled-back tests reuse sequence
    numbers, so a shared file would hold checkpoints of entries that never committed."""
    path = tmp_path / "checkpoints"
    settings.JOURNAL_CHECKPOINT_DIR = path
    return path


@pytest.fixture(scope="session", autouse=True)
def mission_kinds() -> None:
    """The mission kinds replay reads; the crews/llm/approvals apps own them. Register the
    contract definitions for kinds those apps have not registered (yet)."""
    missing = [kind for kind in MISSION_CONTRACT_KINDS if not catalog.is_registered(kind.name)]
    catalog.register(*missing)


@pytest.fixture
def in_acme(acme: Workspace) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


def tamper(sql: str, params: list[Any] | None = None) -> None:
    """Change the journal the way someone with database access would: triggers off."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params or [])
        cursor.execute("SET LOCAL session_replication_role = origin")
