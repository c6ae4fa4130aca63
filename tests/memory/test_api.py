"""The memory REST API: the workspace contract for every endpoint, plus behaviour."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from apps.core.permissions import Role
from apps.memory import services
from apps.memory.demo import DEMO_SUBJECT, seed_demo_memory
from apps.memory.models import Fact, FactStatus
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.api_contract import WorkspaceEndpointContract, assert_envelope
from tests.conftest import key_client, session_client

from .test_semantic import minimal_pdf

ACME_CO = {"label": "Company", "key": "acme.example", "name": "Acme"}


@pytest.fixture(autouse=True)
def _model(local_embedder: Any) -> None:
    """Every endpoint may embed; load the model before the first request, once."""


class TestDocumentsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/memory/documents/"
    read_permission = "memory.read"
    write_permission = "memory.write"
    create_payload = {"title": "Runbook", "text": "Restart the sync worker when the queue is stuck."}
    wrong_type_field = ("metadata", "not-an-object")

    def make_object(self, workspace: Workspace) -> str:
        document = services.document_ingest(title="Detail", text="Some remembered text.")
        return f"/api/v1/memory/documents/{document.id}/"

    def test_operator_ingests_markdown_and_reads_it_back(self, api_as: Any) -> None:
        response = api_as("operator").post(
            self.list_url,
            {
                "title": "Guide",
                "source_type": "markdown",
                "text": "# Setup\nInstall it.\n\n# Use\nRun it.",
                "metadata": {"team": "support"},
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        detail = api_as("viewer").get(f"{self.list_url}{response.json()['id']}/").json()
        assert [c["metadata"]["section"] for c in detail["chunks"]] == ["Setup", "Use"]

    def test_a_pdf_is_ingested_from_base64(self, api_as: Any) -> None:
        pdf = base64.b64encode(minimal_pdf(["Invoices are sent on the first of the month."])).decode()
        response = api_as("operator").post(
            self.list_url, {"title": "Billing", "source_type": "pdf", "content_base64": pdf}, format="json"
        )
        assert response.status_code == 201, response.content
        assert response.json()["chunk_count"] == 1

    def test_text_or_content_but_not_neither(self, api_as: Any) -> None:
        error = assert_envelope(api_as("operator").post(self.list_url, {"title": "x"}, format="json"), 400, "invalid")
        assert "text" in error["details"]

    def test_only_managers_retire_documents(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            url = self.make_object(acme)
        assert_envelope(api_as("operator").delete(url), 403, "permission_denied")
        response = api_as("admin").delete(url, {"reason": "outdated"}, format="json")
        assert response.status_code == 200 and response.json()["is_active"] is False

    def test_list_stays_within_a_query_budget(
        self, api_as: Any, acme: Workspace, django_assert_max_num_queries: Any
    ) -> None:
        with workspace_schema(acme):
            for index in range(3):
                services.document_ingest(title=f"doc {index}", text=f"Text number {index}.")
        client = api_as("viewer")
        with django_assert_max_num_queries(8):
            assert len(client.get(self.list_url).json()["results"]) >= 3


class TestSearchApi(WorkspaceEndpointContract):
    list_url = "/api/v1/memory/search/?query=salesforce"
    read_permission = "memory.read"

    def test_search_by_get_and_post(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            services.document_ingest(title="sf", text="The Salesforce sync runs nightly.", metadata={"kind": "kb"})
            services.document_ingest(title="cats", text="Cats sleep sixteen hours a day.")
        got = api_as("viewer").get('/api/v1/memory/search/?query=when does the CRM sync run&k=1&filters={"kind":"kb"}')
        assert got.status_code == 200, got.content
        assert [hit["title"] for hit in got.json()["results"]] == ["sf"]
        posted = api_as("viewer").post(
            "/api/v1/memory/search/", {"query": "Salesforce", "hybrid": True, "k": 2}, format="json"
        )
        assert posted.json()["results"][0]["title"] == "sf" and posted.json()["results"][0]["text_rank"] > 0

    def test_bad_filters_are_an_error_not_a_crash(self, api_as: Any) -> None:
        assert_envelope(api_as("viewer").get("/api/v1/memory/search/?query=x&filters=nope"), 400, "invalid")
        assert_envelope(api_as("viewer").get("/api/v1/memory/search/?query=x&k=0"), 400, "invalid")


class TestFactsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/memory/facts/"
    read_permission = "memory.read"
    write_permission = "memory.write"
    create_payload = {
        "text": "Acme uses Salesforce.",
        "subject": ACME_CO,
        "relationship": "USES",
        "object": {"label": "Project", "key": "salesforce", "name": "Salesforce"},
    }
    wrong_type_field = ("subject", "Company:acme")

    def make_object(self, workspace: Workspace) -> str:
        fact = services.memory_write_fact(text="Acme has 40 seats.", subject=ACME_CO)
        return f"/api/v1/memory/facts/{fact.id}/"

    def test_operator_writes_a_fact_to_both_stores(self, api_as: Any, acme: Workspace) -> None:
        response = api_as("operator").post(self.list_url, self.create_payload, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["relationship"] == "USES" and body["relationship_uid"] and body["status"] == "active"
        entity = api_as("viewer").get("/api/v1/memory/entities/?label=Company&key=acme.example").json()["results"][0]
        detail = api_as("viewer").get(f"/api/v1/memory/entities/{entity['uid']}/").json()
        assert [r["type"] for r in detail["relationships"]] == ["USES"]
        assert detail["facts"][0]["text"] == "Acme uses Salesforce."

    def test_correct_needs_write_and_retire_needs_manage(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            fact = services.memory_write_fact(
                text="Acme is on the Starter plan.",
                subject=ACME_CO,
                relationship="ON_PLAN",
                object={"label": "Plan", "key": "starter"},
            )
        url = f"/api/v1/memory/facts/{fact.id}/"
        assert_envelope(api_as("viewer").post(url + "correct/", {"text": "x"}, format="json"), 403, "permission_denied")
        corrected = api_as("operator").post(
            url + "correct/",
            {"text": "Acme is on the Pro plan.", "object": {"label": "Plan", "key": "pro"}, "reason": "upgraded"},
            format="json",
        )
        assert corrected.status_code == 201, corrected.content
        new_url = f"/api/v1/memory/facts/{corrected.json()['id']}/"
        assert corrected.json()["object"] == {"label": "Plan", "key": "pro"}
        assert_envelope(api_as("operator").post(new_url + "retire/", {}, format="json"), 403, "permission_denied")
        retired = api_as("admin").post(new_url + "retire/", {"reason": "churned"}, format="json")
        assert retired.status_code == 200 and retired.json()["status"] == FactStatus.RETIRED
        assert_envelope(api_as("admin").post(url + "retire/", {}, format="json"), 409, "fact_not_active")
        with workspace_schema(acme):
            assert Fact.objects.get(pk=fact.pk).status == FactStatus.CORRECTED

    def test_another_workspace_cannot_correct_or_retire(self, personas: Any) -> None:
        with workspace_schema(personas.acme):
            fact = services.memory_write_fact(text="Acme pays yearly.", subject=ACME_CO)
        url = f"/api/v1/memory/facts/{fact.id}/"
        outsider = key_client(personas.globex, Role.OWNER)
        assert_envelope(outsider.post(url + "correct/", {"text": "x"}, format="json"), 404, "not_found")
        assert_envelope(outsider.post(url + "retire/", {}, format="json"), 404, "not_found")

    def test_hostile_relationship_type_is_refused_with_the_envelope(self, api_as: Any) -> None:
        payload = {**self.create_payload, "relationship": "USES]->() DETACH DELETE ("}
        error = assert_envelope(api_as("operator").post(self.list_url, payload, format="json"), 400)
        assert "relationship" in error["details"]


class TestEntitiesApi(WorkspaceEndpointContract):
    list_url = "/api/v1/memory/entities/"
    read_permission = "memory.read"
    write_permission = "memory.write"
    create_payload = {"label": "Company", "key": "initech.example", "name": "Initech"}
    wrong_type_field = ("properties", "not-an-object")

    def make_object(self, workspace: Workspace) -> str:
        entity = services.entity_upsert(label="Company", key="detail.example", name="Detail Co")
        return f"/api/v1/memory/entities/{entity.uid}/"

    def test_list_filters_by_label_and_text(self, api_as: Any) -> None:
        api_as("operator").post(self.list_url, self.create_payload, format="json")
        api_as("operator").post(
            self.list_url, {"label": "Person", "key": "ini@x.example", "name": "Ini"}, format="json"
        )
        body = api_as("viewer").get(self.list_url + "?label=Company&q=initech").json()
        assert [e["key"] for e in body["results"]] == ["initech.example"]
        assert_envelope(api_as("viewer").get(self.list_url + "?label=Company&key=missing"), 404, "not_found")
        assert_envelope(api_as("viewer").get(self.list_url + "?label=bad label"), 400)


class TestRelationshipsApi(WorkspaceEndpointContract):
    list_url = "/api/v1/memory/relationships/"
    read_permission = "memory.read"
    write_permission = "memory.write"
    create_payload = {
        "subject": {"label": "Person", "key": "ops@acme.example"},
        "relationship": "WORKS_AT",
        "object": ACME_CO,
    }
    wrong_type_field = ("valid_from", "last tuesday")

    def test_write_then_close(self, api_as: Any) -> None:
        created = api_as("operator").post(self.list_url, self.create_payload, format="json")
        assert created.status_code == 201, created.content
        uid = created.json()["uid"]
        again = api_as("operator").post(self.list_url, self.create_payload, format="json")
        assert again.status_code == 200 and again.json()["uid"] == uid  # the same current relationship
        closed = api_as("operator").post(
            f"/api/v1/memory/relationships/{uid}/close/", {"reason": "left"}, format="json"
        )
        assert closed.status_code == 200 and closed.json()["valid_to"]
        assert_envelope(
            api_as("operator").post(f"/api/v1/memory/relationships/{uid}/close/", {}, format="json"), 404, "not_found"
        )


class TestContextApi(WorkspaceEndpointContract):
    list_url = f"/api/v1/memory/context/?subject={DEMO_SUBJECT}"
    read_permission = "memory.read"

    def test_context_for_the_demo_subject(self, api_as: Any, acme: Workspace) -> None:
        with workspace_schema(acme):
            seed_demo_memory(acme, {})
        body = api_as("viewer").get(self.list_url + "&token_budget=300").json()
        assert "CTO of Acme" in body["text"] and body["tokens"] <= 300
        posted = api_as("viewer").post(
            "/api/v1/memory/context/", {"subject": DEMO_SUBJECT, "token_budget": 50}, format="json"
        )
        assert posted.status_code == 200 and posted.json()["tokens"] <= 50
        assert_envelope(api_as("viewer").get("/api/v1/memory/context/"), 400, "invalid")


class TestTypesApi(WorkspaceEndpointContract):
    list_url = "/api/v1/memory/types/"
    read_permission = "memory.read"
    write_permission = "memory.manage"
    create_payload = {"kind": "entity", "name": "Vendor"}
    wrong_type_field = ("name", ["Vendor"])

    def test_admin_adds_a_relationship_type(self, api_as: Any) -> None:
        response = api_as("admin").post(
            self.list_url, {"kind": "relationship", "name": "SUPPLIES", "cardinality": "one_per_source"}, format="json"
        )
        assert response.status_code == 201, response.content
        names = {t["name"] for t in api_as("viewer").get(self.list_url).json()["relationship_types"]}
        assert {"SUPPLIES", "WORKS_AT", "ROLE", "ON_PLAN", "OPENED", "ABOUT"} <= names


@pytest.mark.django_db
def test_api_keys_reach_only_their_workspace_memory(personas: Any) -> None:
    with workspace_schema(personas.acme):
        services.document_ingest(title="acme only", text="Acme's escalation phone number is on the wiki.")
    globex = key_client(personas.globex, Role.VIEWER)
    assert globex.get("/api/v1/memory/search/?query=escalation phone number").json()["results"] == []
    acme = session_client(personas.users["viewer"], personas.acme)
    assert acme.get("/api/v1/memory/search/?query=escalation phone number").json()["results"][0]["title"] == "acme only"
