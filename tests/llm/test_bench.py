"""The benchmark command runs end to end (small numbers; the real run is ``make bench-budgets``)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("committed_db")]


def test_bench_budgets_prints_json_with_the_required_fields() -> None:
    out = StringIO()
    errors: list[BaseException] = []

    def run() -> None:
        # Its own connection: the benchmark commits, and its worker threads must see that.
        try:
            call_command("bench_budgets", workers=4, admit=12, overhead_samples=5, throughput_seconds=0.5, stdout=out)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=300)
    assert not errors, errors
    result: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    for key in ("overspend_microusd", "admitted", "expected_admitted", "gateway_overhead_p50_ms",
                "gateway_overhead_p99_ms", "reserve_settle_per_s"):  # fmt: skip
        assert key in result, key
    assert result["overspend_microusd"] == 0
    assert result["admitted"] == result["expected_admitted"] == 12
    assert result["totals_differences"] == 0
    assert result["errors"] == []
    # Phase 3: its 4 workers are threads of one process per CPU (at most 4); every reservation
    # and settlement went to the database alone or in a batch, but each worker's first
    # reservation, which took the general path (its budgets were not known yet).
    assert result["reserve_settle_workers"] == 4
    assert result["reserve_settle_processes"] == min(4, os.cpu_count() or 1)
    pairs = result["reserve_settle_pairs"]
    assert pairs > 0 and 2 * pairs - 4 <= result["reserve_settle_calls"] <= 2 * pairs
    assert 0 < result["reserve_settle_statements"] <= result["reserve_settle_calls"]
    assert result["cpu_calibration_ms_start"] > 0 and result["cpu_calibration_ms_end"] > 0


def test_bench_db_floor_writes_the_pairs_and_cleans_up(personas: Any) -> None:
    """``make bench-db-floor`` runs pgbench in the Postgres container on the test database (a
    workspace of it lends the tables' layout) and drops its scratch schema afterwards."""
    root = Path(__file__).resolve().parents[2]
    database = str(connections["default"].settings_dict["NAME"])
    env = {**os.environ, "CLIENTS": "2", "DURATION": "1", "DATABASE": database}
    run = subprocess.run(
        [str(root / "scripts" / "bench_db_floor.sh")], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["clients"] == 2
    assert result["db_floor_pairs_per_s"] > 0
    assert "number of failed transactions: 0 " in run.stdout
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'bench_floor'")
        assert cursor.fetchone()[0] == 0
