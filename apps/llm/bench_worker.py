"""Entry point of a benchmark worker process (spawned). Importable without Django set up:
the child process sets Django up first, then runs the job from ``apps.llm.bench``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerJob:
    phase: str  # "gateway" | "reserve_settle"
    index: int
    workspace_slug: str
    provider_url: str
    model_id: str
    mission_id: uuid.UUID | None = None
    crew_id: uuid.UUID | None = None
    seconds: float = 0.0
    database_name: str = ""  # the parent's (a test run renames its database)
    threads: int = 1  # workers of this process (reserve_settle), each with its own connection


def worker_main(job: WorkerJob, barrier: Any, results: Any) -> None:
    try:
        import django
        from django.conf import settings

        django.setup()
        if job.database_name:
            settings.DATABASES["default"]["NAME"] = job.database_name
            from django.db import connections

            connections["default"].settings_dict["NAME"] = job.database_name
        from apps.llm.bench import run_worker_job
    except BaseException as exc:
        results.put((job.index, {"error": f"worker start failed: {exc!r}"}))
        barrier.abort()
        raise
    run_worker_job(job, barrier, results)
