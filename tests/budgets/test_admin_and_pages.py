"""The workspace admin (spend vs limit, read-only ledger with CSV export) and the portal page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from apps.budgets.models import Budget, LedgerEntry
from apps.budgets.services import Scopes, Tokens, budget_create, budget_reserve, budget_settle
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import charge

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def spent_budget(acme: Workspace) -> Budget:
    with workspace_schema(acme):
        scopes = Scopes(crew_id=uuid.uuid4())
        budget = budget_create(name="Admin crew budget", scope="crew", scope_id=scopes.crew_id, window="day",
                               limit_microusd=10_000_000, mode="tiered")  # fmt: skip
        r = budget_reserve(scopes=scopes, charge=charge(4_000_000), request_id="admin-spend")
        budget_settle(reservation=r, amount_microusd=2_500_000, tokens=Tokens(input=10, output=3))
    return budget


def test_admin_shows_spend_against_limit(superuser: Any, spent_budget: Budget) -> None:
    response = _client(superuser).get("/w/acme/admin/budgets/budget/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Admin crew budget" in content
    assert "$2.50 spent + $0.00 held of $10.00 (25%)" in content


def test_admin_budget_form_rejects_bad_thresholds(superuser: Any, acme: Workspace) -> None:
    response = _client(superuser).post(
        "/w/acme/admin/budgets/budget/add/",
        {"name": "bad", "scope": "crew", "scope_id": str(uuid.uuid4()), "window": "day", "mode": "hard",
         "limit_microusd": "100", "warn_percent": "", "block_percent": "150", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with the error
    assert "block_percent" in response.content.decode()
    with workspace_schema(acme):
        assert not Budget.objects.filter(name="bad").exists()


def test_admin_creates_budgets_through_the_service(superuser: Any, acme: Workspace) -> None:
    scope_id = uuid.uuid4()
    response = _client(superuser).post(
        "/w/acme/admin/budgets/budget/add/",
        {"name": "from admin", "scope": "agent", "scope_id": str(scope_id), "window": "hour", "mode": "tiered",
         "limit_microusd": "5000", "warn_percent": "80", "block_percent": "100", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    with workspace_schema(acme):
        from apps.audit.models import JournalEntry

        budget = Budget.objects.get(name="from admin")
        assert budget.scope_id == scope_id
        assert JournalEntry.objects.filter(kind="budget.created", payload__budget_id=budget.pk).exists()


def test_ledger_admin_is_read_only_and_exports_csv(superuser: Any, spent_budget: Budget, acme: Workspace) -> None:
    client = _client(superuser)
    listing = client.get("/w/acme/admin/budgets/ledgerentry/?kind=settlement")
    assert listing.status_code == 200
    assert "admin-spend" in listing.content.decode()
    with workspace_schema(acme):
        entry = LedgerEntry.objects.get(request_id="admin-spend", kind="settlement")
    assert client.get("/w/acme/admin/budgets/ledgerentry/add/").status_code == 403
    detail = client.get(f"/w/acme/admin/budgets/ledgerentry/{entry.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert client.post(f"/w/acme/admin/budgets/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    export = client.post("/w/acme/admin/budgets/ledgerentry/", {"action": "export_csv", "_selected_action": [entry.pk]})
    assert export.status_code == 200
    body = b"".join(export.streaming_content).decode()
    assert "admin-spend" in body and "2500000" in body


def test_other_admin_pages_render(superuser: Any, spent_budget: Budget) -> None:
    client = _client(superuser)
    for url in (
        "/w/acme/admin/budgets/budgettotal/",
        "/w/acme/admin/budgets/budgetalert/",
        "/w/acme/admin/llm/llmcall/",
        "/w/acme/admin/llm/routingrule/",
        "/w/acme/admin/llm/workspacellmsettings/",
        "/admin/llm_catalog/catalogmodel/",
        "/admin/llm_catalog/catalogmodel/claude-sonnet-4-6/change/",
        "/admin/llm_catalog/modelprice/",
        "/admin/llm_catalog/globalrouting/",
    ):
        assert client.get(url).status_code == 200, url


def test_portal_budget_page_for_members(viewer: Any, outsider: Any, spent_budget: Budget) -> None:
    response = _client(viewer).get("/w/acme/budgets/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Admin crew budget" in content and "$2.50" in content and "25%" in content
    assert _client(outsider).get("/w/acme/budgets/").status_code == 404
