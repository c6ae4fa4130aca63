"""The reviewer's inbox in headless Chromium against a real daphne, with the real worker: a
mission's tool call waits, the open inbox shows it without a reload, the reviewer approves,
and the mission completes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import connections

from apps.approvals.bench import daphne, free_port
from apps.approvals.models import ApprovalRequest
from apps.crews.models import MissionStatus
from apps.crews.runtime.worker import Worker
from apps.crews.services import mission_create
from apps.llm.providers.offline import ScriptToolCall, ScriptTurn, match_first_user, register_script, unregister_script
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.conftest import PASSWORD

from .conftest import sentinel
from .test_worker_flows import EMAIL, crew_with_policy, mission_status, sent, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("committed_db")]

test_runs_on_the_test_database = sentinel()

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def server() -> Iterator[str]:
    port = free_port()
    with daphne(port, settings_module="tests.approvals.browser_settings"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    previous = settings.CREWS_VOLUME_ROOT
    settings.CREWS_VOLUME_ROOT = tmp_path / "crews"
    running = Worker(concurrency=2, sweep_seconds=60, out=lambda line: None)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.request_stop()
        thread.join(60)
        connections.close_all()
        settings.CREWS_VOLUME_ROOT = previous


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/infra.sh browser")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # plain blocking calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_the_open_inbox_shows_a_new_request_live_and_approving_completes_the_mission(
    acme: Workspace, server: str, worker: Worker, page: Any, operator: Any, reviewer: Any
) -> None:
    marker = f"[browser {uuid.uuid4().hex[:8]}]"
    register_script(
        marker,
        match_first_user(marker),
        [ScriptTurn(text="Sending.", tool_calls=[ScriptToolCall("send_email", EMAIL)]), ScriptTurn(text="Finished.")],
        priority=1,
    )
    try:
        # The reviewer logs in through the real form and opens the inbox.
        page.goto(f"{server}/accounts/login/?next=/w/acme/inbox/")
        page.fill("input[name=username]", reviewer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server}/w/acme/inbox/")
        page.wait_for_selector('#approvals-inbox[data-live="1"]', timeout=10_000)
        page.evaluate("window.__noReload = true")

        # A mission reaches send_email and waits.
        mail.outbox.clear()
        with workspace_schema(acme):
            crew = crew_with_policy(["send_email"], "send_email", "require_sync")
            mission = mission_create(crew=crew, goal=f"{marker} reply to Sarah", created_by_user=operator)
            wait_for(mission_status(mission, MissionStatus.WAITING_APPROVAL), what="the wait")
            request = ApprovalRequest.objects.get(mission_id=mission.pk)

        # It appears in the open page, pushed over the WebSocket: no reload happened.
        card = page.wait_for_selector(f'#pending-mine #req-{request.pk}[data-status="pending"]', timeout=10_000)
        assert marker in card.inner_text() and "sarah@customer.example" in card.inner_text()
        assert page.evaluate("window.__noReload") is True
        assert page.inner_text("#pending-count") == str(page.locator("#pending-mine article").count())

        # The reviewer approves; the card moves to "Decided" and the mission completes.
        started = time.monotonic()
        page.fill(f"#req-{request.pk} textarea[name=comment]", "Looks good.")
        page.click(f"#req-{request.pk} button.approve")
        page.wait_for_selector(f'#decided-list #req-{request.pk}[data-status="approved"]', timeout=10_000)
        with workspace_schema(acme):
            wait_for(mission_status(mission, MissionStatus.COMPLETED), timeout=20, what="completion")
            request.refresh_from_db()
        assert time.monotonic() - started < 20
        assert request.status == "approved" and request.decided_by_label == reviewer.username
        assert request.decision_comment == "Looks good."
        assert sent() == [EMAIL["subject"]]
    finally:
        unregister_script(marker)
