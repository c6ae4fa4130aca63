"""Reserve, settle and release against budgets at every scope, window and mode."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail

from apps.audit.models import JournalEntry
from apps.budgets import services
from apps.budgets.errors import BudgetExceeded
from apps.budgets.models import BudgetAlert, BudgetTotal, LedgerEntry
from apps.budgets.services import (
    Scopes,
    Tokens,
    budget_archive,
    budget_create,
    budget_release,
    budget_reserve,
    budget_settle,
    budget_try_reserve,
    reservations_settle_stale,
)
from apps.budgets.windows import window_for
from apps.core.errors import ValidationFailed
from apps.notifications.models import Notification
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

from .conftest import charge


def _total(budget: Any) -> tuple[int, int]:
    total = BudgetTotal.objects.get(budget=budget)
    return total.spent_microusd, total.reserved_microusd


def test_a_reservation_counts_against_every_applicable_budget_at_once(in_acme: object, scopes: Scopes) -> None:
    crew = budget_create(name="crew", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=10_000)
    mission = budget_create(name="mission", scope="mission", scope_id=scopes.mission_id, window="mission",
                            limit_microusd=10_000)  # fmt: skip
    agent = budget_create(name="agent", scope="agent", scope_id=scopes.agent_id, window="hour", limit_microusd=10_000)
    other_crew = budget_create(name="other", scope="crew", scope_id=uuid.uuid4(), window="day", limit_microusd=10)

    reservation = budget_reserve(scopes=scopes, charge=charge(3_000))

    assert set(reservation.budget_ids) >= {crew.pk, mission.pk, agent.pk}
    assert other_crew.pk not in reservation.budget_ids
    for budget in (crew, mission, agent):
        assert _total(budget) == (0, 3_000)
    budget_settle(reservation=reservation, amount_microusd=1_100, tokens=Tokens(input=10, output=5))
    for budget in (crew, mission, agent):
        assert _total(budget) == (1_100, 0)


def test_reserve_blocks_when_crew_budget_is_spent(in_acme: object, scopes: Scopes) -> None:
    crew = budget_create(name="Support crew", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=5_000)
    budget_create(name="mission", scope="mission", scope_id=scopes.mission_id, window="mission", limit_microusd=10**9)
    first = budget_reserve(scopes=scopes, charge=charge(4_000), request_id="first")
    budget_settle(reservation=first, amount_microusd=4_000, tokens=Tokens(input=1))

    with pytest.raises(BudgetExceeded) as caught:
        budget_reserve(scopes=scopes, charge=charge(1_001), request_id="second")

    error = caught.value
    assert (error.status_code, error.code) == (402, "budget_exceeded")
    assert (error.scope, error.scope_id, error.budget_id) == ("crew", str(scopes.crew_id), crew.pk)
    assert "Support crew" in error.message
    assert error.details["requested_microusd"] == 1_001
    assert _total(crew) == (4_000, 0)  # nothing was reserved
    blocked = LedgerEntry.objects.get(request_id="second")
    assert (blocked.kind, blocked.blocked_budget_id, blocked.requested_microusd) == ("blocked", crew.pk, 1_001)
    journaled = JournalEntry.objects.filter(kind="budget.exceeded", request_id="second").get()
    assert journaled.payload["budget_id"] == crew.pk
    assert journaled.payload["scope"] == "crew"


def test_the_narrowest_blocking_scope_is_named(in_acme: object, scopes: Scopes) -> None:
    budget_create(name="crew", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=100)
    agent = budget_create(name="agent", scope="agent", scope_id=scopes.agent_id, window="day", limit_microusd=100)
    outcome = budget_try_reserve(scopes=scopes, charge=charge(500))
    assert outcome.reservation is None and outcome.exceeded is not None
    assert outcome.exceeded.scope == "agent" and outcome.exceeded.budget_id == agent.pk
    assert {b["scope"] for b in outcome.exceeded.details["blocking"]} == {"crew", "agent"}


def test_hard_budget_admits_up_to_exactly_its_limit(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(name="hard", scope="mission", scope_id=scopes.mission_id, window="mission",
                           limit_microusd=1_000, mode="hard")  # fmt: skip
    assert (budget.warn_percent, budget.block_percent) == (None, 100)
    budget_reserve(scopes=scopes, charge=charge(600))
    budget_reserve(scopes=scopes, charge=charge(400))  # exactly 100%
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=scopes, charge=charge(1))
    assert _total(budget) == (0, 1_000)


def test_soft_budget_warns_at_its_limit_and_blocks_only_at_the_ceiling(
    in_acme: object, scopes: Scopes, django_capture_on_commit_callbacks: Any
) -> None:
    budget = budget_create(name="soft", scope="crew", scope_id=scopes.crew_id, window="week", limit_microusd=1_000,
                           mode="soft")  # fmt: skip
    assert (budget.warn_percent, budget.block_percent) == (100, 120)
    with django_capture_on_commit_callbacks(execute=True):
        first = budget_reserve(scopes=scopes, charge=charge(1_100))
        budget_settle(reservation=first, amount_microusd=1_100, tokens=Tokens(input=1))  # 110%: allowed, warns
    assert set(BudgetAlert.objects.filter(budget=budget).values_list("level", flat=True)) == {"warning", "exceeded"}
    budget_reserve(scopes=scopes, charge=charge(100))  # 120%: still allowed
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=scopes, charge=charge(1))  # past the 120% ceiling


def test_soft_ceiling_is_configurable(in_acme: object, scopes: Scopes) -> None:
    budget_create(name="soft", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=1_000,
                  mode="soft", block_percent=150)  # fmt: skip
    budget_reserve(scopes=scopes, charge=charge(1_500))
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=scopes, charge=charge(1))


def test_tiered_budget_notifies_owners_and_admins_once_per_window(
    in_acme: object, scopes: Scopes, django_capture_on_commit_callbacks: Any, persona_users: dict[str, Any]
) -> None:
    budget = budget_create(name="Tiered crew", scope="crew", scope_id=scopes.crew_id, window="day",
                           limit_microusd=1_000, mode="tiered")  # fmt: skip
    assert (budget.warn_percent, budget.block_percent) == (80, 100)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        r = budget_reserve(scopes=scopes, charge=charge(700))
        budget_settle(reservation=r, amount_microusd=700, tokens=Tokens(input=1))  # 70%: nothing
        assert not Notification.objects.filter(kind="budget.warning", subject__contains="Tiered crew").exists()
        r = budget_reserve(scopes=scopes, charge=charge(150))
        budget_settle(reservation=r, amount_microusd=150, tokens=Tokens(input=1))  # 85%: warns
        r = budget_reserve(scopes=scopes, charge=charge(50))
        budget_settle(reservation=r, amount_microusd=50, tokens=Tokens(input=1))  # 90%: already warned
    warned = Notification.objects.filter(kind="budget.warning", subject__contains="Tiered crew")
    recipients = {n.user.username for n in warned}
    assert recipients == {persona_users["owner"].username, persona_users["admin"].username}
    assert all("Tiered crew" in n.subject and "80%" in n.subject for n in warned)
    emails = [m for m in mail.outbox if "Tiered crew" in m.subject]
    assert len(emails) == 1  # once per window
    assert set(emails[0].to) == {persona_users["owner"].email, persona_users["admin"].email}
    assert JournalEntry.objects.filter(kind="budget.warning", payload__budget_id=budget.pk).count() == 1
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=scopes, charge=charge(101))  # would pass 100%
    blocked = Notification.objects.filter(kind="budget.exceeded", subject__contains="Tiered crew")
    assert blocked.count() == 2  # blocked: owner and admin


def test_a_workspace_webhook_hears_each_threshold_once(
    db: None, acme: Workspace, scopes: Scopes, webhook_server: Any, django_capture_on_commit_callbacks: Any
) -> None:
    url, receiver = webhook_server
    acme.webhook_url = url  # this test's own copy of the workspace (see tests/conftest.py)
    with workspace_schema(acme), django_capture_on_commit_callbacks(execute=True):
        budget_create(name="Hooked crew", scope="crew", scope_id=scopes.crew_id, window="day",
                      limit_microusd=1_000, mode="tiered")  # fmt: skip
        for amount in (850, 50):  # 85%: warns; 90%: already warned in this window
            r = budget_reserve(scopes=scopes, charge=charge(amount))
            budget_settle(reservation=r, amount_microusd=amount, tokens=Tokens(input=1))
        with pytest.raises(BudgetExceeded):
            budget_reserve(scopes=scopes, charge=charge(101))
    kinds = [body["quarterdeck"]["kind"] for body in receiver.received if "Hooked crew" in body["text"]]
    assert kinds == ["budget.warning", "budget.exceeded"]


def test_warnings_notify_again_in_the_next_window(
    in_acme: object, scopes: Scopes, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    budget = budget_create(name="hourly", scope="agent", scope_id=scopes.agent_id, window="hour",
                           limit_microusd=1_000, mode="tiered")  # fmt: skip
    now = datetime(2026, 3, 1, 10, 59, tzinfo=UTC)
    monkeypatch.setattr(services.timezone, "now", lambda: now)
    with django_capture_on_commit_callbacks(execute=True):
        r = budget_reserve(scopes=scopes, charge=charge(900))
        budget_settle(reservation=r, amount_microusd=900, tokens=Tokens(input=1))
        now = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
        r = budget_reserve(scopes=scopes, charge=charge(900))  # a fresh hour: admitted
        budget_settle(reservation=r, amount_microusd=900, tokens=Tokens(input=1))
    keys = sorted(BudgetAlert.objects.filter(budget=budget, level="warning").values_list("window_key", flat=True))
    assert keys == ["hour:2026-03-01T10", "hour:2026-03-01T11"]


def test_a_settlement_after_midnight_lands_in_the_reservations_window(
    in_acme: object, scopes: Scopes, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = budget_create(name="daily", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=10_000)
    now = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    monkeypatch.setattr(services.timezone, "now", lambda: now)
    reservation = budget_reserve(scopes=scopes, charge=charge(5_000))
    now = datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC)
    budget_settle(reservation=reservation, amount_microusd=4_000, tokens=Tokens(input=1))
    totals = {t.window_key: (t.spent_microusd, t.reserved_microusd) for t in BudgetTotal.objects.filter(budget=budget)}
    assert totals == {"day:2026-03-01": (4_000, 0)}
    # The new day starts empty.
    reservation = budget_reserve(scopes=scopes, charge=charge(9_000))
    assert reservation.window_keys == ["day:2026-03-02"]


def test_mission_window_is_per_mission(in_acme: object) -> None:
    crew_id = uuid.uuid4()
    budget_create(name="per mission", scope="crew", scope_id=crew_id, window="mission", limit_microusd=1_000)
    first, second = uuid.uuid4(), uuid.uuid4()
    budget_reserve(scopes=Scopes(crew_id=crew_id, mission_id=first), charge=charge(1_000))
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=Scopes(crew_id=crew_id, mission_id=first), charge=charge(1))
    reservation = budget_reserve(scopes=Scopes(crew_id=crew_id, mission_id=second), charge=charge(1_000))
    assert reservation.window_keys == [f"mission:{second}"]


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
        datetime(2027, 3, 7, 12, 0, tzinfo=UTC),  # a Sunday
        datetime(2026, 6, 15, 1, 0, tzinfo=UTC) + timedelta(hours=5, minutes=30),
    ],
)
def test_sql_and_python_agree_on_windows(in_acme: object, at: datetime) -> None:
    mission_id = uuid.uuid4()
    windows = ("hour", "day", "week", "month", "mission")
    scope_id = uuid.uuid4()
    for window in windows:
        budget_create(name=window, scope="agent", scope_id=scope_id, window=window, limit_microusd=10)
    with services.prepared_cursor() as cursor:
        locked = services._lock_windows(cursor, Scopes(mission_id=mission_id, agent_id=scope_id), at)
    by_window = {item.line.window: item.line for item in locked if item.line.scope == "agent"}
    for window in windows:
        expected = window_for(window, at, mission_id)
        line = by_window[window]
        assert (line.window_key, line.window_start, line.window_end) == (expected.key, expected.start, expected.end)
    assert window_for("week", at).start.weekday() == 0  # type: ignore[union-attr]


def test_archived_budgets_no_longer_apply(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(name="tiny", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=1)
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=scopes, charge=charge(10))
    budget_archive(budget=budget)
    assert budget.pk not in budget_reserve(scopes=scopes, charge=charge(10)).budget_ids


def test_release_gives_the_whole_reservation_back(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(
        name="m", scope="mission", scope_id=scopes.mission_id, window="mission", limit_microusd=1_000
    )
    reservation = budget_reserve(scopes=scopes, charge=charge(1_000))
    with pytest.raises(BudgetExceeded):
        budget_reserve(scopes=scopes, charge=charge(1))
    budget_release(reservation=reservation, reason="provider failed")
    assert _total(budget) == (0, 0)
    assert LedgerEntry.objects.filter(reservation_id=reservation.id, kind="release").exists()
    assert JournalEntry.objects.filter(kind="budget.released", payload__reservation_id=str(reservation.id)).exists()
    budget_reserve(scopes=scopes, charge=charge(1_000))  # the room is back


def test_stale_reservations_are_settled_at_their_worst_case(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(
        name="m", scope="mission", scope_id=scopes.mission_id, window="mission", limit_microusd=10**6
    )
    reservation = budget_reserve(scopes=scopes, charge=charge(777))
    assert reservations_settle_stale(older_than=timedelta(hours=1)) == 0
    assert reservations_settle_stale(older_than=timedelta(seconds=-1)) >= 1
    assert _total(budget) == (777, 0)
    settlement = LedgerEntry.objects.get(reservation_id=reservation.id, kind="settlement")
    assert settlement.amount_microusd == 777


@pytest.mark.parametrize(
    ("mode", "warn", "block"),
    [("hard", None, 150), ("tiered", 90, 110), ("soft", 80, 90), ("tiered", 100, 100)],
)
def test_thresholds_must_suit_the_mode(in_acme: object, mode: str, warn: int | None, block: int) -> None:
    with pytest.raises(ValidationFailed):
        budget_create(name="bad", scope="crew", scope_id=uuid.uuid4(), window="day", limit_microusd=100, mode=mode,
                      warn_percent=warn, block_percent=block)  # fmt: skip


def test_scope_ids_are_required_except_for_the_workspace(in_acme: object) -> None:
    with pytest.raises(ValidationFailed):
        budget_create(name="crew without id", scope="crew", window="day", limit_microusd=100)
    with pytest.raises(ValidationFailed):
        budget_create(name="ws with id", scope="workspace", scope_id=uuid.uuid4(), window="day", limit_microusd=100)


def test_workspace_budget_applies_to_every_call(in_acme: object, scopes: Scopes) -> None:
    budget = budget_create(name="Workspace month", scope="workspace", window="month", limit_microusd=10**12)
    assert budget.pk in budget_reserve(scopes=scopes, charge=charge(5)).budget_ids
    assert budget.pk in budget_reserve(scopes=Scopes(), charge=charge(5)).budget_ids


def test_reservations_land_in_the_active_workspace_even_after_switching(
    db: None, acme: Any, globex: Any, scopes: Scopes
) -> None:
    """The hot statements run on a raw cursor with schema-qualified names: switching the
    active workspace between calls must never write into the previous one."""
    from apps.tenants.access import workspace_schema

    with workspace_schema(acme):
        budget_create(name="acme crew", scope="crew", scope_id=scopes.crew_id, window="day", limit_microusd=10**6)
        budget_reserve(scopes=scopes, charge=charge(10), request_id="switch-acme")
    with workspace_schema(globex):
        reservation = budget_reserve(scopes=scopes, charge=charge(10), request_id="switch-globex")
        assert reservation.budget_ids == [] or all(
            BudgetTotal.objects.filter(budget_id=b).exists() for b in reservation.budget_ids
        )
        assert LedgerEntry.objects.filter(request_id="switch-globex").exists()
        assert not LedgerEntry.objects.filter(request_id="switch-acme").exists()
    with workspace_schema(acme):
        assert not LedgerEntry.objects.filter(request_id="switch-globex").exists()
        assert LedgerEntry.objects.filter(request_id="switch-acme").exists()
