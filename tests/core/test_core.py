from __future__ import annotations

import pytest

from apps.core.money import format_usd, from_usd, token_cost
from apps.core.permissions import ROLE_ACTIONS, Role, role_allows


def test_token_cost_rounds_up_never_down() -> None:
    # $3 per million tokens = 3 micros per token
    assert token_cost(1, 3_000_000) == 3
    # $0.25 per million: one token costs 0.25 micros and is charged 1
    assert token_cost(1, 250_000) == 1
    assert token_cost(4, 250_000) == 1
    assert token_cost(5, 250_000) == 2
    assert token_cost(0, 15_000_000) == 0


def test_dollar_parsing_is_exact() -> None:
    assert from_usd("12.50") == 12_500_000
    assert from_usd("0.000001") == 1
    with pytest.raises(ValueError):
        from_usd("0.0000001")
    with pytest.raises(ValueError):
        from_usd("NaN")
    assert format_usd(1_234_560_000) == "$1,234.56"


def test_viewer_only_reads_and_reviewer_decides() -> None:
    assert role_allows(Role.VIEWER, "journal.read")
    assert not role_allows(Role.VIEWER, "missions.run")
    assert role_allows(Role.REVIEWER, "approvals.decide")
    assert not role_allows(Role.OPERATOR, "approvals.decide")
    assert not role_allows(None, "journal.read")


def test_every_role_can_read_and_only_owner_manages_owners() -> None:
    for role in Role.values:
        assert role_allows(role, "workspace.view")
    assert [r for r in Role.values if role_allows(r, "owners.manage")] == [Role.OWNER]
    assert ROLE_ACTIONS[Role.OWNER] >= ROLE_ACTIONS[Role.ADMIN]


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        role_allows(Role.OWNER, "jornal.read")
