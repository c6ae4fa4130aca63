"""The LLM REST API: catalog, workspace settings, routing rules, call records."""

from __future__ import annotations

import uuid
from typing import Any

from apps.audit.models import JournalEntry
from apps.llm.models import LlmCall, RoutingRule, WorkspaceLlmSettings
from apps.llm.services import routing_rule_create
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract, assert_envelope


class TestModelCatalogApi(WorkspaceEndpointContract):
    list_url = "/api/v1/llm/models/"
    read_permission = "llm.view"

    def test_lists_the_seeded_tiers_with_prices(self, api_as: Any) -> None:
        models = {m["model_id"]: m for m in api_as("viewer").get(self.list_url).json()}
        assert {"claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5", "offline-medium"} <= set(models)
        assert {models[m]["tier"] for m in ("claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5")} == {
            "large",
            "medium",
            "small",
        }
        sonnet = models["claude-sonnet-4-6"]["price"]
        assert (sonnet["input_per_mtok_microusd"], sonnet["output_per_mtok_microusd"]) == (3_000_000, 15_000_000)
        assert (sonnet["cache_read_per_mtok_microusd"], sonnet["cache_write_per_mtok_microusd"]) == (300_000, 3_750_000)
        assert models["claude-sonnet-4-6"]["fallbacks"] == ["claude-haiku-4-5"]
        assert "claude-sonnet-4-5" not in models  # retired by its provider: not offered


class TestLlmSettingsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/llm/settings/"
    read_permission = "llm.view"
    write_permission = "llm.manage"

    def test_admin_sets_the_workspace_default_model(self, api_as: Any, acme: Workspace) -> None:
        response = api_as("admin").patch(self.list_url, {"default_model": "offline-small"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["default_model"] == response.json()["effective_default_model"] == "offline-small"
        with workspace_schema(acme):
            assert WorkspaceLlmSettings.objects.get(id=1).default_model == "offline-small"
            assert JournalEntry.objects.filter(kind="llm.settings_changed").exists()
        cleared = api_as("admin").patch(self.list_url, {"default_model": ""}, format="json").json()
        assert cleared["default_model"] == "" and cleared["effective_default_model"]  # the global default

    def test_unknown_models_are_rejected(self, api_as: Any) -> None:
        error = assert_envelope(
            api_as("owner").patch(self.list_url, {"default_model": "gpt-imaginary"}, format="json"), 400, "invalid"
        )
        assert "default_model" in error["details"]
        assert_envelope(api_as("owner").patch(self.list_url, {"default_modle": "x"}, format="json"), 400, "invalid")

    def test_roles_without_llm_manage_get_403(self, api_as: Any) -> None:
        for persona in ("viewer", "operator", "reviewer"):
            response = api_as(persona).patch(self.list_url, {"default_model": "offline-small"}, format="json")
            assert_envelope(response, 403, "permission_denied")


class TestRoutingRulesApi(WorkspaceEndpointContract):
    list_url = "/api/v1/llm/rules/"
    read_permission = "llm.view"
    write_permission = "llm.manage"
    create_payload = {"name": "cheaper near the limit", "to_model": "offline-small", "trigger_scope": "mission"}
    wrong_type_field = ("priority", "first")

    def make_object(self, workspace: Workspace) -> str:
        rule = routing_rule_create(name="detail", to_model="claude-haiku-4-5")
        return f"/api/v1/llm/rules/{rule.pk}/"

    def test_rule_lifecycle(self, api_as: Any, acme: Workspace) -> None:
        client = api_as("admin")
        crew_id = str(uuid.uuid4())
        created = client.post(self.list_url, {**self.create_payload, "crew_id": crew_id}, format="json")
        assert created.status_code == 201, created.content
        rule_id = created.json()["id"]
        assert created.json()["crew_id"] == crew_id
        updated = client.patch(f"{self.list_url}{rule_id}/", {"priority": 5, "is_active": False}, format="json")
        assert (updated.json()["priority"], updated.json()["is_active"]) == (5, False)
        assert client.delete(f"{self.list_url}{rule_id}/").status_code == 204
        with workspace_schema(acme):
            assert not RoutingRule.objects.filter(pk=rule_id).exists()
            actions = list(
                JournalEntry.objects.filter(kind="llm.rule_changed", payload__rule_id=rule_id)
                .order_by("seq")
                .values_list("payload__action", flat=True)
            )
        assert actions == ["created", "updated", "deleted"]

    def test_target_model_must_be_routable(self, api_as: Any) -> None:
        payload = {**self.create_payload, "to_model": "nope"}
        error = assert_envelope(api_as("admin").post(self.list_url, payload, format="json"), 400, "invalid")
        assert "to_model" in error["details"]


class TestLlmCallsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/llm/calls/"
    read_permission = "llm.view"

    def make_object(self, workspace: Workspace) -> str:
        call = LlmCall.objects.create(request_id=f"api-{uuid.uuid4().hex}", status="completed", model="offline-small")
        return f"/api/v1/llm/calls/{call.pk}/"

    def test_calls_made_through_the_gateway_are_listed(self, api_as: Any, acme: Workspace) -> None:
        from apps.llm.gateway import chat
        from apps.llm.types import CallContext, ChatRequest, Message

        mission_id = uuid.uuid4()
        with workspace_schema(acme):
            response = chat(
                request=ChatRequest(messages=[Message.user("hello")]),
                context=CallContext(mission_id=mission_id, agent_model="offline-small"),
            )
        rows = api_as("viewer").get(f"{self.list_url}?mission_id={mission_id}").json()["results"]
        assert [(r["request_id"], r["status"], r["cost_microusd"]) for r in rows] == [
            (response.request_id, "completed", response.cost_microusd)
        ]
        assert "response" not in rows[0]
        assert_envelope(api_as("viewer").get(f"{self.list_url}?status=lost"), 400, "invalid")
