"""Helpers for the approvals tests: a tool call as the runtime would pass it, policies, deciders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apps.approvals import services
from apps.approvals.models import Policy
from apps.audit.models import JournalEntry
from apps.core.context import Actor, acting_as, user_actor
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace


def call_kwargs(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``gate()``: a side-effecting email from a strict crew."""
    base: dict[str, Any] = {
        "tool_name": "send_email",
        "arguments": {"to": ["sarah@customer.example"], "subject": "Your Salesforce question", "body": "Hi Sarah"},
        "tool_call_id": f"toolu_{uuid.uuid4().hex[:12]}",
        "has_side_effects": True,
        "estimated_cost_microusd": 0,
        "crew_id": uuid.uuid4(),
        "agent_id": uuid.uuid4(),
        "mission_id": uuid.uuid4(),
        "autonomy_level": "strict",
        "started_by_user_id": None,
        "reasoning": "The draft is ready; sending the reply.",
        "crew_name": "Support",
        "agent_name": "responder",
        "mission_goal": "Reply to Sarah about the Salesforce integration",
        "mission_cost_microusd": 123_456,
    }
    base.update(overrides)
    return base


def make_policy(**fields: Any) -> Policy:
    data: dict[str, Any] = {"name": f"policy {uuid.uuid4().hex[:8]}", "priority": 100}
    data.update(fields)
    return services.policy_create(fields=data)


def decider_for(user: Any, role: str) -> services.Decider:
    return services.Decider(role=role, actor=user_actor(user), user_id=user.pk)


def journal(kind: str) -> list[JournalEntry]:
    return list(JournalEntry.objects.filter(kind=kind).order_by("seq"))


@pytest.fixture
def in_acme(acme: Workspace) -> Iterator[Workspace]:
    with workspace_schema(acme):
        yield acme


@pytest.fixture
def as_admin(admin_user: Any) -> Iterator[Actor]:
    with acting_as(user_actor(admin_user)) as actor:
        yield actor


@pytest.fixture(autouse=True)
def _committed_tests_use_the_test_database(request: pytest.FixtureRequest) -> None:
    """pytest-django creates the test database only when a selected test asks for ``db`` or
    the django_db mark; ``committed_db`` alone would then commit into the real database.
    Refuse instead (each module with committed tests carries a marked sentinel test, so
    running a whole module works)."""
    if "committed_db" not in request.fixturenames:
        return
    request.getfixturevalue("committed_db")  # after the test database is set up, if it is
    from django.db import connection

    name = str(connection.settings_dict.get("NAME", ""))
    if not name.startswith("test_"):
        pytest.fail(f"committed test on database {name!r}, not a test database: select a django_db test too")


def sentinel() -> Any:
    """A django_db-marked test to put in every module of committed tests (see above)."""

    @pytest.mark.django_db
    def test_runs_on_the_test_database() -> None:
        from django.db import connection

        assert str(connection.settings_dict["NAME"]).startswith("test_")

    return test_runs_on_the_test_database
