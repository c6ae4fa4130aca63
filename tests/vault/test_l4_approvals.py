"""L4 end to end with the real approvals app: a request, a person's decision, the credential."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.core.context import user_actor
from apps.tenants.models import Workspace
from apps.vault.escalation import escalation_handler, escalation_handler_installed
from apps.vault.keeper import KeeperDenied, KeeperPendingApproval, keeper_request

from .conftest import make_grant, make_secret

approvals_integrations = pytest.importorskip("apps.approvals.integrations")
approvals_services = pytest.importorskip("apps.approvals.services")

INTENT = "Rotate the production database password after the incident review"


def _ask(secret_name: str, crew: uuid.UUID, agent: uuid.UUID, mission: uuid.UUID) -> Any:
    return keeper_request(
        secret_name=secret_name, crew_id=crew, agent_id=agent, mission_id=mission, intent=INTENT, tool_name="db_admin"
    )


def test_the_approvals_app_is_the_installed_escalation_handler() -> None:
    assert escalation_handler() is approvals_integrations.vault_escalation


@pytest.mark.parametrize(("decision", "outcome"), [("approve", "handed out"), ("deny", "denied")])
def test_an_l4_secret_waits_for_a_person(in_acme: Workspace, reviewer: Any, decision: str, outcome: str) -> None:
    secret = make_secret(tier="L4", value="prod-root-password-l4")
    crew, agent, mission = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    make_grant(secret, crew_id=crew)
    with escalation_handler_installed(approvals_integrations.vault_escalation):
        with pytest.raises(KeeperPendingApproval) as pending:
            _ask(secret.name, crew, agent, mission)
        # Asking again while it waits answers from the same approval request.
        with pytest.raises(KeeperPendingApproval) as again:
            _ask(secret.name, crew, agent, mission)
        assert again.value.reference == pending.value.reference

        decider = approvals_services.Decider(role="reviewer", actor=user_actor(reviewer), user_id=reviewer.pk)
        approvals_services.request_decide(
            request_id=pending.value.reference, decider=decider, decision=decision, comment="checked"
        )
        if outcome == "handed out":
            assert _ask(secret.name, crew, agent, mission).value == "prod-root-password-l4"
        else:
            with pytest.raises(KeeperDenied) as denied:
                _ask(secret.name, crew, agent, mission)
            assert denied.value.reason_code == "human_denied"
