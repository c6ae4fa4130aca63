"""Verification split over several processes (``journal_verify(jobs=N)``) finds exactly what
one process finds: the ranges are walked apart and joined, so a problem on a range's first
entry, inside a range, or across a compacted run must come out the same.

These commit for real (other processes only see committed rows), each on a thread with its
own connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection, transaction

from apps.audit import catalog, verify
from apps.audit.catalog import EntryKind, Severity
from apps.audit.services import NewEntry, journal_append_many
from apps.audit.verify import journal_verify
from apps.tenants.models import Workspace
from apps.tenants.services import workspace_provision
from tests.budgets.test_concurrency import on_thread
from tests.budgets.test_one_statement import on_thread_public

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]

catalog.register(EntryKind("test.parallel", Severity.INFO, required={"n": int}))

ENTRIES = 600
JOBS = 3


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace whose journal holds ENTRIES committed entries (and its genesis)."""
    monkeypatch.setattr(verify, "PARALLEL_MIN_ENTRIES", 1)
    slug = f"pv-{uuid.uuid4().hex[:8]}"
    workspace = on_thread_public(lambda: workspace_provision(name="Parallel verify", slug=slug).workspace)
    on_thread(
        workspace,
        lambda: journal_append_many(entries=[NewEntry(kind="test.parallel", payload={"n": n}) for n in range(ENTRIES)]),
    )
    return workspace


def _tamper(workspace: Workspace, sql: str) -> None:
    """Change committed entries the way someone with database access would: triggers off."""

    def run() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql)

    on_thread(workspace, run)


def _both(workspace: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    return on_thread(
        workspace,
        lambda: (
            journal_verify(jobs=1, use_exported=False).as_dict(),
            journal_verify(jobs=JOBS, use_exported=False).as_dict(),
        ),
    )


def _same(one: dict[str, Any], many: dict[str, Any]) -> None:
    for key in ("ok", "entries", "head_seq", "first_bad_seq", "problems"):
        assert one[key] == many[key], (key, one[key], many[key])


def _range_starts(workspace: Workspace) -> list[int]:
    """Where the JOBS ranges begin (as journal_verify splits 1..max(seq))."""
    last = on_thread(workspace, lambda: journal_verify(jobs=1, use_exported=False).head_seq)
    step = -(-last // JOBS)
    return list(range(1, last + 1, step))


def test_an_untouched_journal_verifies_in_several_processes(journal: Workspace) -> None:
    one, many = _both(journal)
    assert many["ok"], many
    assert many["entries"] == many["head_seq"] >= ENTRIES
    _same(one, many)


@pytest.mark.parametrize(
    "case",
    [
        "edited first of a range",
        "edited inside a range",
        "deleted first of a range",
        "deleted last of a range",
        "reordered across ranges",
        "truncated tail",
    ],
)
def test_tampering_is_found_the_same_way_by_one_and_by_several_processes(journal: Workspace, case: str) -> None:
    second, third = _range_starts(journal)[1:3]
    inside = second + 17
    sql, first_bad = {
        "edited first of a range": (
            f"UPDATE audit_journalentry SET payload = '{{\"n\": -1}}' WHERE seq = {second}",
            second,
        ),
        "edited inside a range": (
            f"UPDATE audit_journalentry SET actor_label = 'someone' WHERE seq = {inside}",
            inside,
        ),
        "deleted first of a range": (f"DELETE FROM audit_journalentry WHERE seq = {third}", third),
        "deleted last of a range": (f"DELETE FROM audit_journalentry WHERE seq = {third - 1}", third - 1),
        "reordered across ranges": (
            f"UPDATE audit_journalentry SET seq = -1 WHERE seq = {second - 1}; "
            f"UPDATE audit_journalentry SET seq = {second - 1} WHERE seq = {second}; "
            f"UPDATE audit_journalentry SET seq = {second} WHERE seq = -1",
            second - 1,
        ),
        "truncated tail": (
            "DELETE FROM audit_journalentry WHERE seq > (SELECT max(seq) - 5 FROM audit_journalentry)",
            None,
        ),
    }[case]
    _tamper(journal, sql)
    one, many = _both(journal)
    assert not many["ok"], case
    _same(one, many)
    if first_bad is not None:
        assert many["first_bad_seq"] == first_bad, many
    else:
        assert many["first_bad_seq"] == many["head_seq"] - 5 + 1, many
