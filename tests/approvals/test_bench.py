"""``manage.py bench_approvals`` end to end, small: real daphne, WebSocket clients, worker."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from .conftest import sentinel

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("committed_db")]

test_runs_on_the_test_database = sentinel()


def test_bench_approvals_prints_push_and_resume_percentiles_as_its_last_line() -> None:
    out = io.StringIO()
    call_command("bench_approvals", requests=12, clients=2, missions=3, worker_concurrency=2, stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["push_samples"] == 24 and result["push_lost"] == 0
    assert result["resume_samples"] == 3 and result["resume_lost"] == 0
    for key in ("push_p50_ms", "push_p95_ms", "resume_p50_ms", "resume_p95_ms"):
        assert isinstance(result[key], float) and result[key] > 0
    assert result["targets"] == {"push_p95_ms": 250.0, "resume_p95_ms": 1000.0}
