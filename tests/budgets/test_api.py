"""The budgets REST API: CRUD, the ledger (filters, CSV), spend reports; the contract for
every endpoint (401, 403 per role, 404 across workspaces, the error envelope)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest

from apps.budgets.models import Budget, LedgerEntry
from apps.budgets.services import Scopes, Tokens, budget_adjust, budget_create, budget_reserve, budget_settle
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract, assert_envelope
from tests.conftest import key_client

from .conftest import PRICING, charge


class TestBudgetsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/budgets/"
    read_permission = "budgets.view"
    write_permission = "budgets.manage"
    create_payload = {"name": "Support crew daily", "scope": "crew", "scope_id": str(uuid.uuid4()),
                      "window": "day", "mode": "tiered", "limit_usd": "12.50"}  # fmt: skip
    wrong_type_field = ("limit_usd", "lots")

    def make_object(self, workspace: Workspace) -> str:
        budget = budget_create(name="detail", scope="agent", scope_id=uuid.uuid4(), window="hour", limit_microusd=99)
        return f"/api/v1/budgets/{budget.pk}/"

    def test_admin_creates_a_budget_in_dollars(self, api_as: Any, acme: Workspace) -> None:
        response = api_as("admin").post(self.list_url, self.create_payload, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["limit_microusd"], body["limit_usd"]) == (12_500_000, "12.500000")
        assert (body["mode"], body["warn_percent"], body["block_percent"]) == ("tiered", 80, 100)
        assert body["current"]["spent_microusd"] == 0 and body["current"]["window_key"].startswith("day:")
        with workspace_schema(acme):
            assert Budget.objects.filter(pk=body["id"], scope="crew").exists()

    def test_thresholds_that_do_not_suit_the_mode_are_rejected(self, api_as: Any) -> None:
        payload = {**self.create_payload, "mode": "hard", "block_percent": 130}
        error = assert_envelope(api_as("owner").post(self.list_url, payload, format="json"), 400, "invalid")
        assert "block_percent" in error["details"]

    def test_both_limit_forms_at_once_are_rejected(self, api_as: Any) -> None:
        payload = {**self.create_payload, "limit_microusd": 5}
        assert_envelope(api_as("owner").post(self.list_url, payload, format="json"), 400, "invalid")

    def test_update_and_archive(self, api_as: Any, acme: Workspace) -> None:
        client = api_as("owner")
        budget_id = client.post(self.list_url, self.create_payload, format="json").json()["id"]
        response = client.patch(f"{self.list_url}{budget_id}/", {"limit_usd": "20", "warn_percent": 90}, format="json")
        assert response.status_code == 200, response.content
        assert (response.json()["limit_microusd"], response.json()["warn_percent"]) == (20_000_000, 90)
        error = assert_envelope(client.patch(f"{self.list_url}{budget_id}/", {"scope": "agent"}, format="json"), 400)
        assert "scope" in error["details"]
        assert client.delete(f"{self.list_url}{budget_id}/").status_code == 204
        listed = [b["id"] for b in client.get(self.list_url).json()["results"]]
        assert budget_id not in listed
        assert budget_id in [b["id"] for b in client.get(self.list_url + "?include_archived=1").json()["results"]]
        with workspace_schema(acme):
            assert Budget.objects.get(pk=budget_id).is_active is False

    def test_operator_cannot_change_a_budget(self, api_as: Any, acme: Workspace) -> None:
        url = self._detail_url(acme)
        assert_envelope(api_as("operator").patch(url, {"limit_usd": "1"}, format="json"), 403, "permission_denied")
        assert_envelope(api_as("viewer").delete(url), 403, "permission_denied")

    def test_list_shows_current_spend_within_a_query_budget(
        self, api_as: Any, acme: Workspace, django_assert_max_num_queries: Any
    ) -> None:
        with workspace_schema(acme):
            scopes = Scopes(crew_id=uuid.uuid4())
            budget = budget_create(name="spend", scope="crew", scope_id=scopes.crew_id, window="month",
                                   limit_microusd=10_000)  # fmt: skip
            for _ in range(5):
                budget_create(name="filler", scope="agent", scope_id=uuid.uuid4(), window="day", limit_microusd=10)
            r = budget_reserve(scopes=scopes, charge=charge(3_000))
            budget_settle(reservation=r, amount_microusd=2_500, tokens=Tokens(input=1))
            budget_reserve(scopes=scopes, charge=charge(1_000))
        client = api_as("viewer")
        with django_assert_max_num_queries(10):
            response = client.get(self.list_url + "?scope=crew")
        row = next(b for b in response.json()["results"] if b["id"] == budget.pk)
        assert row["current"]["spent_microusd"] == 2_500
        assert row["current"]["reserved_microusd"] == 1_000
        assert row["current"]["percent"] == 35


class TestLedgerApi(WorkspaceEndpointContract):
    list_url = "/api/v1/budgets/ledger/"
    read_permission = "budgets.view"

    def make_object(self, workspace: Workspace) -> str:
        entry_id = budget_adjust(scopes=Scopes(crew_id=uuid.uuid4()), amount_microusd=-5, note="credit")
        return f"/api/v1/budgets/ledger/{entry_id}/"

    @pytest.fixture
    def activity(self, acme: Workspace, db: None) -> Scopes:
        scopes = Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())
        with workspace_schema(acme):
            budget_create(name="m", scope="mission", scope_id=scopes.mission_id, window="mission", limit_microusd=10**6)
            for n in range(3):
                r = budget_reserve(scopes=scopes, charge=charge(1_000), request_id=f"ledger-api-{n}")
                budget_settle(reservation=r, amount_microusd=400 + n, tokens=Tokens(input=10 + n, output=3))
        return scopes

    def test_filters(self, api_as: Any, activity: Scopes) -> None:
        client = api_as("viewer")
        rows = client.get(f"{self.list_url}?mission_id={activity.mission_id}&kind=settlement").json()["results"]
        assert sorted(r["amount_microusd"] for r in rows) == [400, 401, 402]
        assert all(r["model"] == PRICING.model and r["price_id"] == PRICING.price_id for r in rows)
        rows = client.get(f"{self.list_url}?request_id=ledger-api-1").json()["results"]
        assert [r["kind"] for r in rows] == ["settlement", "reservation"]
        assert_envelope(client.get(f"{self.list_url}?kind=gift"), 400, "invalid")
        assert_envelope(client.get(f"{self.list_url}?colour=red"), 400, "invalid")

    def test_ledger_is_read_only(self, api_as: Any, acme: Workspace) -> None:
        url = self._detail_url(acme)
        client = api_as("owner")
        for response in (client.post(self.list_url, {}, format="json"), client.patch(url, {}), client.delete(url)):
            assert response.status_code == 405

    def test_paginated_list_within_a_query_budget(
        self, api_as: Any, activity: Scopes, django_assert_max_num_queries: Any
    ) -> None:
        client = api_as("viewer")
        with django_assert_max_num_queries(8):
            body = client.get(f"{self.list_url}?page_size=2").json()
        assert len(body["results"]) == 2 and body["next"]


class TestLedgerExportApi(WorkspaceEndpointContract):
    list_url = "/api/v1/budgets/ledger/export/"
    read_permission = "budgets.view"

    def test_csv_export_of_a_filtered_selection(self, api_as: Any, acme: Workspace) -> None:
        mission_id = uuid.uuid4()
        with workspace_schema(acme):
            scopes = Scopes(mission_id=mission_id)
            r = budget_reserve(scopes=scopes, charge=charge(900), request_id="=cmd|' /C calc'!A0")
            budget_settle(reservation=r, amount_microusd=812, tokens=Tokens(input=40, output=7))
        response = api_as("viewer").get(f"{self.list_url}?mission_id={mission_id}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [row["kind"] for row in rows] == ["settlement", "reservation"]
        assert rows[0]["amount_microusd"] == "812" and rows[0]["amount_usd"] == "0.000812"
        assert rows[0]["price_input_per_mtok"] == str(PRICING.input_per_mtok)
        assert rows[0]["request_id"].startswith("'=")  # no formula injection into spreadsheets

    def test_an_api_key_exports_its_own_workspace_only(self, acme: Workspace, globex: Workspace, db: None) -> None:
        with workspace_schema(globex):
            budget_adjust(scopes=Scopes(crew_id=uuid.uuid4()), amount_microusd=1, note="globex only marker")
        response = key_client(acme, "viewer").get(self.list_url)
        content = b"".join(response.streaming_content).decode()
        assert "globex only marker" not in content


class TestSpendApi(WorkspaceEndpointContract):
    list_url = "/api/v1/budgets/spend/"
    read_permission = "budgets.view"

    def test_spend_by_model_and_day_and_scope(self, api_as: Any, acme: Workspace) -> None:
        crew_a, crew_b = uuid.uuid4(), uuid.uuid4()
        with workspace_schema(acme):
            for crew_id, amount in ((crew_a, 100), (crew_a, 200), (crew_b, 50)):
                r = budget_reserve(scopes=Scopes(crew_id=crew_id), charge=charge(1_000))
                budget_settle(reservation=r, amount_microusd=amount, tokens=Tokens(input=5, output=2))
            budget_adjust(scopes=Scopes(crew_id=crew_b), amount_microusd=-20, note="refund")
        client = api_as("viewer")
        body = client.get(f"{self.list_url}?group_by=crew&crew_id={crew_a}").json()
        assert body["rows"] == [
            {"crew": str(crew_a), "spent_microusd": 300, "spent_usd": "0.000300", "calls": 2, "input_tokens": 10,
             "output_tokens": 4, "cache_read_tokens": 0, "cache_write_tokens": 0},
        ]  # fmt: skip
        body = client.get(f"{self.list_url}?group_by=day,model&crew_id={crew_b}").json()
        by_model = {row["model"]: (row["spent_microusd"], row["calls"]) for row in body["rows"]}
        assert by_model == {PRICING.model: (50, 1), "": (-20, 0)}  # the refund is not a model's
        assert body["total_microusd"] == 30
        assert all(len(row["day"]) == 10 for row in body["rows"])
        assert_envelope(client.get(f"{self.list_url}?group_by=colour"), 400, "invalid")

    def test_spend_is_per_workspace(self, api_as: Any, globex: Workspace, db: None) -> None:
        crew_id = uuid.uuid4()
        with workspace_schema(globex):
            budget_adjust(scopes=Scopes(crew_id=crew_id), amount_microusd=777, note="globex")
        body = api_as("viewer").get(f"{self.list_url}?group_by=crew&crew_id={crew_id}").json()
        assert body["rows"] == []


def test_ledger_entries_carry_the_scope_chain_in_the_api(api_as: Any, acme: Workspace, db: None) -> None:
    scopes = Scopes(crew_id=uuid.uuid4(), mission_id=uuid.uuid4(), agent_id=uuid.uuid4())
    with workspace_schema(acme):
        budget_reserve(scopes=scopes, charge=charge(10), request_id="chain")
        entry = LedgerEntry.objects.get(request_id="chain")
    body = api_as("viewer").get(f"/api/v1/budgets/ledger/{entry.pk}/").json()
    assert (body["crew_id"], body["mission_id"], body["agent_id"]) == tuple(
        str(v) for v in (scopes.crew_id, scopes.mission_id, scopes.agent_id)
    )
