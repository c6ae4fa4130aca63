"""LangGraph checkpoints in the workspace's own schema.

The saver's tables (checkpoints, checkpoint_blobs, checkpoint_writes, checkpoint_migrations)
are created in every workspace schema by this app's migration 0002 (the same SQL as
``PostgresSaver.setup()``, without CONCURRENTLY so it runs inside the migration's
transaction), and ``setup()`` runs lazily once per process and schema to apply migrations a
newer langgraph may bring.

Each saver gets its own connection: autocommit (a checkpoint must be durable the moment it is
written, or a killed worker loses it), ``dict_row`` and ``prepare_threshold=0`` as the saver
requires, and a search_path of the workspace schema, so the saver's unqualified table names
resolve to that workspace's tables and no other.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS
from psycopg.rows import dict_row

from apps.core.errors import NotFound, ValidationFailed

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ready: set[str] = set()
_ready_lock = threading.Lock()


def conninfo(*, schema: str, application_name: str = "quarterdeck-crews", with_public: bool = True) -> str:
    """libpq connection string for the active Django database, with ``schema`` on the path
    (first, before public; or alone)."""
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    params = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=params["NAME"],
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or None,
        port=str(params["PORT"]) if params.get("PORT") else None,
        application_name=application_name,
        options=f"-c search_path={schema},public" if with_public else f"-c search_path={schema}",
    )


def install_tables(cursor: Any) -> None:
    """Create the saver's tables in the cursor's current schema (for the migration)."""
    cursor.execute(MIGRATIONS[0])
    cursor.execute("SELECT v FROM checkpoint_migrations ORDER BY v DESC LIMIT 1")
    row = cursor.fetchone()
    current = -1 if row is None else int(row[0])
    for version in range(current + 1, len(MIGRATIONS)):
        cursor.execute(MIGRATIONS[version].replace("CONCURRENTLY", ""))
        cursor.execute("INSERT INTO checkpoint_migrations (v) VALUES (%s)", [version])


@contextlib.contextmanager
def saver(schema: str) -> Iterator[PostgresSaver]:
    """A PostgresSaver on its own autocommit connection in ``schema``."""
    # The workspace schema alone on the path: if it were missing (or not yet committed), the
    # saver's unqualified names must fail, never fall through to tables in another schema.
    with psycopg.Connection.connect(
        conninfo(schema=schema, with_public=False), autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        row = conn.execute("SELECT current_schema() AS schema").fetchone()
        if row is None or row["schema"] != schema:
            raise RuntimeError(f"schema {schema!r} is not visible to the checkpoint connection")
        checkpointer = PostgresSaver(conn)  # type: ignore[arg-type]
        if schema not in _ready:
            with _ready_lock:
                if schema not in _ready:
                    checkpointer.setup()
                    _ready.add(schema)
        yield checkpointer


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


# --- history and forks --------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointInfo:
    checkpoint_id: str
    step: int
    next: tuple[str, ...]
    created_at: str
    messages: int


@dataclass(frozen=True)
class ForkPoint:
    schema: str
    checkpoint_id: str
    step: int
    values: dict[str, Any]


def _schema() -> str:
    return str(getattr(connection, "schema_name", ""))


def history(*, mission: Any) -> list[CheckpointInfo]:
    """The mission's checkpoints, oldest first, one per step boundary (the latest for a step)."""
    from .graph import compile_graph

    by_step: dict[int, CheckpointInfo] = {}
    with saver(_schema()) as checkpointer:
        graph = compile_graph(checkpointer)
        for snapshot in graph.get_state_history(thread_config(mission.thread_id)):
            values = snapshot.values or {}
            if "step" not in values:
                continue
            step = int(values["step"])
            info = CheckpointInfo(
                checkpoint_id=str(snapshot.config["configurable"]["checkpoint_id"]),
                step=step,
                next=tuple(snapshot.next),
                created_at=str(snapshot.created_at or ""),
                messages=len(values.get("messages") or []),
            )
            # History comes newest first: keep the first seen (latest) per step.
            by_step.setdefault(step, info)
    return [by_step[step] for step in sorted(by_step)]


def fork_point(*, mission: Any, step: int | None = None, checkpoint_id: str | None = None) -> ForkPoint:
    from .graph import compile_graph

    schema = _schema()
    with saver(schema) as checkpointer:
        graph = compile_graph(checkpointer)
        snapshot: Any = None
        if checkpoint_id:
            snapshot = graph.get_state(thread_config(mission.thread_id, checkpoint_id))
            if not snapshot.values or snapshot.config["configurable"].get("checkpoint_id") != checkpoint_id:
                raise NotFound("No such checkpoint in this mission.", details={"checkpoint_id": checkpoint_id})
        else:
            for candidate in graph.get_state_history(thread_config(mission.thread_id)):
                values = candidate.values or {}
                if "step" not in values:
                    continue
                # Newest first: the latest checkpoint at the step, or the nearest before it
                # (a step cut off by a crash has no checkpoint of its own).
                if step is None or int(values["step"]) <= step:
                    snapshot = candidate
                    break
            if snapshot is None:
                if step is None:
                    raise ValidationFailed("The mission has no checkpoint yet.", code="no_checkpoint")
                raise NotFound(f"The mission has no checkpoint at or before step {step}.", details={"step": step})
        values = dict(snapshot.values)
        return ForkPoint(
            schema=schema,
            checkpoint_id=str(snapshot.config["configurable"]["checkpoint_id"]),
            step=int(values.get("step", 0)),
            values=values,
        )


def copy_state(*, point: ForkPoint, thread_id: str) -> None:
    """Start ``thread_id`` from the fork point's state: its next step is the graph's entry,
    which routes to whatever the state needs (pending tool calls, or the model)."""
    from .graph import compile_graph, fork_values

    with saver(point.schema) as checkpointer:
        graph = compile_graph(checkpointer)
        graph.update_state(thread_config(thread_id), fork_values(point.values), as_node="__input__")
