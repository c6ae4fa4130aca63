"""The mission page in headless Chromium against a real daphne: the timeline fills itself from
the journal's WebSocket tail while a real worker runs the mission, without a reload."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from apps.crews.offline_scripts import BENCH_MARKER
from apps.crews.runtime.worker import Worker
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace
from tests.conftest import PASSWORD
from tests.crews.conftest import make_crew, start, unique
from tests.crews.processes import Daphne, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/infra.sh browser")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright keeps a loop in this thread
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.django_db
def test_the_timeline_script_is_served() -> None:
    # Also makes pytest-django set up the test database when this module runs alone.
    from django.contrib.staticfiles import finders

    assert finders.find("js/crews-timeline.js")


@pytest.mark.usefixtures("committed_db")
def test_the_mission_page_timeline_follows_the_run_live(
    acme: Workspace, operator: Any, page: Any, tmp_path: Path, settings: Any
) -> None:
    settings.CREWS_VOLUME_ROOT = tmp_path
    with workspace_schema(acme):
        mission = start(make_crew(tools=["crm_lookup", "write_note"]), f"{BENCH_MARKER} {unique('browser')}")
    port = free_port()
    with Daphne(port):
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/accounts/login/?next=/w/acme/missions/{mission.pk}/")
        page.fill("input[name=username]", operator.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/w/acme/missions/{mission.pk}/")
        page.wait_for_selector('#mission[data-live="1"]', timeout=15_000)
        page.evaluate("window.__noReload = true")
        assert page.locator('#timeline li[data-kind="mission.created"]').count() == 1
        assert page.locator('#timeline li[data-kind="mission.step"]').count() == 0

        worker = Worker(concurrency=1, sweep_seconds=60, out=lambda line: None)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            page.wait_for_selector('#timeline li[data-kind="mission.completed"]', timeout=60_000)
        finally:
            worker.request_stop()
            thread.join(60)
            connections.close_all()
        assert page.evaluate("window.__noReload") is True
        assert page.locator('#timeline li[data-kind="mission.step"]').count() == 10
        assert page.locator('#timeline li[data-kind="llm.completed"]').count() == 5
        assert page.locator('#timeline li[data-kind="tool.executed"]').count() == 5
        assert page.inner_text("#mission-status") == "Completed"
        assert page.inner_text("#mission-steps") == "10"
