from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.usefixtures("committed_db")  # real commits: checkpoints are exported after commit
def test_bench_journal_prints_rates_and_detects_every_tamper_case(personas: object) -> None:
    out = StringIO()
    call_command("bench_journal", "--appends", "40", "--batches", "2", "--batch-size", "150", stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["tamper_detected"] == result["tamper_cases"] == 4
    assert all(result["tamper"].values())
    assert result["verify_ok"] is True
    for key in ("append_per_s", "batch_append_per_s", "verify_per_s", "baseline_commit_per_s"):
        assert result[key] > 0
    # Idempotent: a second run reuses the benchmark workspace and its journal still verifies.
    out = StringIO()
    call_command("bench_journal", "--appends", "10", "--batches", "1", "--batch-size", "100", stdout=out)
    assert json.loads(out.getvalue().strip().splitlines()[-1])["verify_ok"] is True
    assert "provisioning" not in out.getvalue()
