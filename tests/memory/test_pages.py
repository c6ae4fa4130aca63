"""Portal pages under /w/<slug>/memory/."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.memory import graph as g
from apps.memory import services
from apps.memory.demo import DEMO_SUBJECT, seed_demo_memory
from apps.memory.models import Fact, FactStatus
from apps.tenants.access import workspace_schema

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def demo(acme: Any, local_embedder: Any) -> Any:
    with workspace_schema(acme):
        seed_demo_memory(acme, {})
    return acme


def test_viewer_searches_and_browses(demo: Any, viewer: Any) -> None:
    client = client_for(viewer)
    page = client.get("/w/acme/memory/?q=salesforce+token+expires&hybrid=on")
    assert page.status_code == 200 and b"The OAuth token expires every day" in page.content
    assert b"Add a document" not in page.content  # viewers cannot write
    with workspace_schema(demo):
        sarah = g.entity_find(g.Graph.current(), label="Person", key=DEMO_SUBJECT)
    assert sarah is not None
    entity = client.get(f"/w/acme/memory/entities/{sarah.uid}/")
    assert (
        entity.status_code == 200
        and b"WORKS_AT" in entity.content
        and b"Sarah Chen is the CTO of Acme." in entity.content
    )
    listing = client.get("/w/acme/memory/entities/?label=Person&q=sarah")
    assert b"Sarah Chen" in listing.content
    context = client.get(f"/w/acme/memory/context/?subject={DEMO_SUBJECT}&token_budget=300")
    assert b"last three tickets were about the Salesforce integration" in context.content
    assert client.get("/w/acme/memory/facts/?status=all").status_code == 200


def test_other_workspaces_members_get_404(demo: Any, outsider: Any) -> None:
    assert client_for(outsider).get("/w/acme/memory/").status_code == 404


def test_operator_ingests_and_corrects_but_cannot_retire(demo: Any, operator: Any) -> None:
    client = client_for(operator)
    response = client.post(
        "/w/acme/memory/ingest/", {"title": "Note", "source_type": "text", "text": "Call Sarah Friday."}
    )
    assert response.status_code == 302 and "/memory/documents/" in response["Location"]
    with workspace_schema(demo):
        fact = Fact.objects.get(text="Acme is on the Pro plan.")
    corrected = client.post(
        f"/w/acme/memory/facts/{fact.id}/correct/", {"text": "Acme is on the Enterprise plan.", "reason": "upgraded"}
    )
    assert corrected.status_code == 302
    with workspace_schema(demo):
        fact.refresh_from_db()
        assert fact.status == FactStatus.CORRECTED
        new = Fact.objects.get(pk=fact.superseded_by_id)
    assert client.post(f"/w/acme/memory/facts/{new.id}/retire/", {"reason": "x"}).status_code == 403


def test_viewer_cannot_write_facts(demo: Any, viewer: Any) -> None:
    client = client_for(viewer)
    assert client.post("/w/acme/memory/facts/", {"text": "x"}).status_code == 403
    assert client.post("/w/acme/memory/ingest/", {"title": "x", "source_type": "text", "text": "y"}).status_code == 403


def test_admin_retires_a_fact_from_the_entity_page(demo: Any, admin_user: Any) -> None:
    with workspace_schema(demo):
        fact = services.memory_write_fact(
            text="Acme has a dedicated Slack channel.", subject={"label": "Company", "key": "acme.example"}
        )
    response = client_for(admin_user).post(
        f"/w/acme/memory/facts/{fact.id}/retire/", {"reason": "closed", "next": "/w/acme/memory/facts/"}
    )
    assert response.status_code == 302 and response["Location"] == "/w/acme/memory/facts/"
    with workspace_schema(demo):
        assert Fact.objects.get(pk=fact.pk).status == FactStatus.RETIRED


def test_writing_a_fact_from_the_portal(demo: Any, operator: Any) -> None:
    response = client_for(operator).post(
        "/w/acme/memory/facts/",
        {
            "text": "Marcus Lee reports to Sarah Chen.",
            "subject": "Person:marcus.lee@acme.example",
            "relationship": "REPORTS_TO",
            "object": f"Person:{DEMO_SUBJECT}",
        },
    )
    assert response.status_code == 302
    with workspace_schema(demo):
        assert Fact.objects.get(text="Marcus Lee reports to Sarah Chen.").relationship_uid is not None


def test_workspace_admin_lists_memory(demo: Any, superuser: Any) -> None:
    client = client_for(superuser)
    for model in ("document", "chunk", "fact", "entitytype", "relationshiptype", "memorysettings"):
        assert client.get(f"/w/acme/admin/memory/{model}/").status_code == 200, model
