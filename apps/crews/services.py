"""Writes of the crews app. Each journals in its own transaction (see apps.audit.services).

Mission state changes lock the mission row first: a person's cancel and a worker's step both
change the same row, and the lock decides which came first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone

from apps.audit.services import journal_append
from apps.core.context import current_actor
from apps.core.errors import Conflict, NotFound, ValidationFailed

from .models import (
    FINISHED_STATUSES,
    Agent,
    Autonomy,
    Crew,
    CrmChange,
    CrmChangeStatus,
    Mission,
    MissionControl,
    MissionMessage,
    MissionStatus,
)
from .tools import get_tool

MAX_INPUT_BYTES = 256 * 1024


def _clean(instance: models.Model) -> None:
    try:
        instance.full_clean()
    except ValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        if any("already exists" in str(m) for messages in details.values() for m in messages):
            raise Conflict("An item with this name already exists.", code="already_exists", details=details) from None
        raise ValidationFailed(details=details) from None


def _changes(instance: models.Model, changes: Mapping[str, Any]) -> dict[str, Any]:
    diff = {}
    for field, value in changes.items():
        before = getattr(instance, field)
        if before != value:
            diff[field] = {"from": _plain(before), "to": _plain(value)}
    return diff


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)


def wake_workers(*, mission_id: uuid.UUID | str | None = None, reason: str) -> None:
    """Wake the workers (Postgres NOTIFY, delivered when the current transaction commits).

    Payload: {"schema", "mission_id", "reason"}. Other apps (approvals after a decision) send
    the same JSON with ``SELECT pg_notify('quarterdeck_wake', ...)``; a malformed payload
    makes workers sweep every workspace, so nothing is lost, only slower.
    """
    payload = {
        "schema": getattr(connection, "schema_name", ""),
        "mission_id": str(mission_id) if mission_id else None,
        "reason": reason,
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [settings.CREWS_WAKE_CHANNEL, json.dumps(payload)])


# --- crews and agents ---------------------------------------------------------------------


def _check_allowlist(hosts: Iterable[Any]) -> list[str]:
    clean = []
    for host in hosts:
        if not isinstance(host, str) or not host.strip() or "/" in host or " " in host.strip():
            raise ValidationFailed(details={"http_allowlist": [f"Not a host or host:port: {host!r}."]})
        clean.append(host.strip().lower())
    return clean


@transaction.atomic
def crew_create(
    *,
    name: str,
    default_model: str,
    purpose: str = "",
    autonomy: str = Autonomy.GUIDED,
    http_allowlist: Iterable[str] = (),
    max_steps: int = 30,
    max_wall_seconds: int = 900,
    settings: Mapping[str, Any] | None = None,
) -> Crew:
    crew = Crew(
        name=name,
        default_model=default_model,
        purpose=purpose,
        autonomy=autonomy,
        http_allowlist=_check_allowlist(http_allowlist),
        max_steps=max_steps,
        max_wall_seconds=max_wall_seconds,
        settings=dict(settings or {}),
    )
    _clean(crew)
    crew.save()
    journal_append(
        kind="crew.created",
        payload={"name": crew.name, "autonomy": crew.autonomy, "default_model": crew.default_model},
        crew_id=crew.pk,
    )
    return crew


CREW_EDITABLE = frozenset(
    {
        "name",
        "purpose",
        "autonomy",
        "default_model",
        "http_allowlist",
        "max_steps",
        "max_wall_seconds",
        "settings",
        "is_active",
    }
)


@transaction.atomic
def crew_update(*, crew: Crew, **changes: Any) -> Crew:
    unknown = set(changes) - CREW_EDITABLE
    if unknown:
        raise ValidationFailed(details={name: ["Cannot be changed."] for name in sorted(unknown)})
    if "http_allowlist" in changes:
        changes["http_allowlist"] = _check_allowlist(changes["http_allowlist"])
    diff = _changes(crew, changes)
    for field, value in changes.items():
        setattr(crew, field, value)
    _clean(crew)
    crew.save()
    if diff:
        journal_append(kind="crew.updated", payload={"name": crew.name, "changes": diff}, crew_id=crew.pk)
    return crew


def _check_tools(tools: Iterable[Any]) -> list[str]:
    names = list(tools)
    unknown = [name for name in names if not isinstance(name, str) or get_tool(name) is None]
    if unknown:
        raise ValidationFailed(details={"tools": [f"Unknown tool: {name!r}." for name in unknown]})
    return names


@transaction.atomic
def agent_create(
    *,
    crew: Crew,
    name: str,
    role: str,
    instructions: str = "",
    model: str = "",
    tools: Iterable[str] = (),
    settings: Mapping[str, Any] | None = None,
    position: int | None = None,
) -> Agent:
    if position is None:
        position = (crew.agents.aggregate(top=models.Max("position"))["top"] or 0) + 1 if crew.agents.exists() else 0
    agent = Agent(
        crew=crew,
        name=name,
        role=role,
        instructions=instructions,
        model=model,
        tools=_check_tools(tools),
        settings=dict(settings or {}),
        position=position,
    )
    _clean(agent)
    agent.save()
    journal_append(
        kind="agent.created",
        payload={"name": agent.name, "role": agent.role, "model": agent.model_name, "tools": list(agent.tools)},
        crew_id=crew.pk,
        agent_id=agent.pk,
    )
    return agent


AGENT_EDITABLE = frozenset({"name", "role", "instructions", "model", "tools", "settings", "position"})


@transaction.atomic
def agent_update(*, agent: Agent, **changes: Any) -> Agent:
    unknown = set(changes) - AGENT_EDITABLE
    if unknown:
        raise ValidationFailed(details={name: ["Cannot be changed."] for name in sorted(unknown)})
    if "tools" in changes:
        changes["tools"] = _check_tools(changes["tools"])
    diff = _changes(agent, changes)
    for field, value in changes.items():
        setattr(agent, field, value)
    _clean(agent)
    agent.save()
    if diff:
        journal_append(
            kind="agent.updated",
            payload={"name": agent.name, "changes": diff},
            crew_id=agent.crew_id,
            agent_id=agent.pk,
        )
    return agent


# --- missions -----------------------------------------------------------------------------


def _locked(mission: Mission) -> Mission:
    # The mission row only, and NO KEY UPDATE: inserts that reference the mission or its crew
    # (a step's messages, a new mission of the crew) need not wait for us.
    locked = (
        Mission.objects.select_for_update(no_key=True, of=("self",))
        .select_related("crew")
        .filter(pk=mission.pk)
        .first()
    )
    if locked is None:
        raise NotFound("No such mission.")
    return locked


def _user_id(user: Any) -> int | None:
    return user.pk if user is not None and getattr(user, "is_authenticated", False) else None


@transaction.atomic
def mission_create(
    *,
    crew: Crew,
    goal: str,
    input: Mapping[str, Any] | None = None,
    created_by_user: Any = None,
    max_steps: int | None = None,
    max_wall_seconds: int | None = None,
    mission_id: uuid.UUID | None = None,
    forked_from: Mission | None = None,
    fork_checkpoint_id: str = "",
) -> Mission:
    """Queue a mission for the crew and wake a worker."""
    if not crew.is_active:
        raise Conflict("This crew is inactive.", code="crew_inactive")
    if not crew.agents.exists():
        raise Conflict("This crew has no agents.", code="crew_has_no_agents")
    data = dict(input or {})
    if len(json.dumps(data)) > MAX_INPUT_BYTES:
        raise ValidationFailed(details={"input": [f"At most {MAX_INPUT_BYTES} bytes of JSON."]})
    mission_id = mission_id or uuid.uuid4()
    mission = Mission(
        id=mission_id,
        crew=crew,
        goal=goal,
        input=data,
        thread_id=f"mission-{mission_id}",
        max_steps=max_steps or crew.max_steps,
        max_wall_seconds=max_wall_seconds or crew.max_wall_seconds,
        created_by=current_actor().as_dict(),
        created_by_user_id=_user_id(created_by_user),
        forked_from=forked_from,
        fork_checkpoint_id=fork_checkpoint_id,
    )
    _clean(mission)
    mission.save(force_insert=True)
    if forked_from is None:
        journal_append(
            kind="mission.created",
            payload={
                "goal": goal,
                "input": data,
                "crew_id": str(crew.pk),
                "crew": crew.name,
                "max_steps": mission.max_steps,
                "max_wall_seconds": mission.max_wall_seconds,
            },
            crew_id=crew.pk,
            mission_id=mission.pk,
        )
    wake_workers(mission_id=mission.pk, reason="created")
    return mission


def _finish(mission: Mission, status: str, *, reason: str, error: str = "") -> None:
    mission.status = status
    mission.control = MissionControl.NONE
    mission.halt_reason = reason
    mission.finished_at = timezone.now()
    mission.claimed_by = ""
    mission.lease_expires_at = None
    mission.waiting_on = ""
    mission.resume_payload = None
    if error:
        mission.error = {"reason": reason, "message": error}
    mission.save()


@transaction.atomic
def mission_cancel(*, mission: Mission, reason: str = "cancelled by a person") -> Mission:
    """Cancel now if no worker runs it, else at its next step."""
    mission = _locked(mission)
    if mission.status in FINISHED_STATUSES:
        raise Conflict(f"The mission is already {mission.status}.", code="mission_finished")
    if mission.status == MissionStatus.RUNNING:
        if mission.control != MissionControl.CANCEL:
            mission.control = MissionControl.CANCEL
            mission.save(update_fields=["control", "updated_at"])
            journal_append(
                kind="mission.control_requested",
                payload={"control": "cancel"},
                crew_id=mission.crew_id,
                mission_id=mission.pk,
            )
        return mission
    _finish(mission, MissionStatus.CANCELLED, reason=reason)
    journal_append(
        kind="mission.cancelled",
        payload={"status": "cancelled", "output": None, "reason": reason, "step": mission.steps},
        crew_id=mission.crew_id,
        mission_id=mission.pk,
    )
    withdraw_approvals_on_commit(mission.pk)
    return mission


def withdraw_approvals_on_commit(mission_id: uuid.UUID) -> None:
    """Once the mission's end commits, its pending approval requests need no reviewer."""
    from .runtime import governance

    transaction.on_commit(lambda: governance.withdraw_approvals(mission_id=mission_id))


@transaction.atomic
def mission_pause(*, mission: Mission) -> Mission:
    """Pause now if queued, else at its next step (a waiting mission pauses once decided)."""
    mission = _locked(mission)
    if mission.status in FINISHED_STATUSES or mission.status == MissionStatus.PAUSED:
        raise Conflict(f"The mission is {mission.status}.", code="mission_not_pausable")
    if mission.status == MissionStatus.QUEUED and not mission.claimed_by:
        mission.status = MissionStatus.PAUSED
        mission.control = MissionControl.NONE
        mission.save(update_fields=["status", "control", "updated_at"])
        journal_append(
            kind="mission.paused", payload={"step": mission.steps}, crew_id=mission.crew_id, mission_id=mission.pk
        )
        return mission
    if mission.control == MissionControl.NONE:
        mission.control = MissionControl.PAUSE
        mission.save(update_fields=["control", "updated_at"])
        journal_append(
            kind="mission.control_requested",
            payload={"control": "pause"},
            crew_id=mission.crew_id,
            mission_id=mission.pk,
        )
    return mission


@transaction.atomic
def mission_resume(*, mission: Mission) -> Mission:
    """Continue a paused mission from its last checkpoint."""
    mission = _locked(mission)
    if mission.status != MissionStatus.PAUSED:
        if mission.control == MissionControl.PAUSE:
            # Not paused yet: withdraw the request instead.
            mission.control = MissionControl.NONE
            mission.save(update_fields=["control", "updated_at"])
            return mission
        raise Conflict(f"The mission is {mission.status}, not paused.", code="mission_not_paused")
    mission.status = MissionStatus.QUEUED
    mission.control = MissionControl.NONE
    mission.save(update_fields=["status", "control", "updated_at"])
    journal_append(
        kind="mission.resumed",
        payload={"reason": "resumed by a person"},
        crew_id=mission.crew_id,
        mission_id=mission.pk,
    )
    wake_workers(mission_id=mission.pk, reason="resumed")
    return mission


@transaction.atomic
def mission_retry(*, mission: Mission) -> Mission:
    """Queue a failed or cancelled mission again; it continues from its last checkpoint."""
    mission = _locked(mission)
    if mission.status not in (MissionStatus.FAILED, MissionStatus.CANCELLED):
        raise Conflict(f"Only failed or cancelled missions can be retried, not {mission.status}.", code="not_retryable")
    previous = mission.status
    mission.status = MissionStatus.QUEUED
    mission.control = MissionControl.NONE
    mission.error = {}
    mission.halt_reason = ""
    mission.finished_at = None
    mission.save()
    journal_append(
        kind="mission.retried", payload={"previous_status": previous}, crew_id=mission.crew_id, mission_id=mission.pk
    )
    wake_workers(mission_id=mission.pk, reason="retried")
    return mission


def mission_fork(
    *,
    mission: Mission,
    step: int | None = None,
    from_seq: int | None = None,
    checkpoint_id: str | None = None,
    created_by_user: Any = None,
    reason: str = "",
) -> Mission:
    """A new mission that continues ``mission`` from a chosen point; the original is untouched.

    The point is a step number, a journal sequence number of one of the mission's entries, or
    a checkpoint id (default: the latest checkpoint). It maps to the LangGraph checkpoint after
    that step (or the nearest earlier one); the journal records the fork (``fork.created``, so
    replaying the fork replays the original up to the point), and the fork's thread starts
    from a copy of that checkpoint's state.
    """
    from apps.audit.services import mission_fork as journal_fork

    from . import selectors
    from .runtime import checkpoints

    if from_seq is not None:
        step = selectors.mission_step_at_seq(mission=mission, seq=from_seq)
    point = checkpoints.fork_point(mission=mission, step=step, checkpoint_id=checkpoint_id)
    seq = from_seq if from_seq is not None else selectors.mission_seq_for_step(mission=mission, step=point.step)
    fork_id = uuid.uuid4()
    with transaction.atomic():
        journal_fork(
            source_mission_id=mission.pk,
            from_seq=seq,
            new_mission_id=fork_id,
            reason=reason or f"forked after step {point.step}",
        )
        fork = mission_create(
            crew=mission.crew,
            goal=mission.goal,
            input=mission.input,
            created_by_user=created_by_user,
            max_steps=mission.max_steps,
            max_wall_seconds=mission.max_wall_seconds,
            mission_id=fork_id,
            forked_from=mission,
            fork_checkpoint_id=point.checkpoint_id,
        )
        journal_append(
            kind="mission.forked",
            payload={
                "goal": fork.goal,
                "crew_id": str(fork.crew_id),
                "source_mission_id": str(mission.pk),
                "from_step": point.step,
                "checkpoint_id": point.checkpoint_id,
                "from_seq": seq,
            },
            crew_id=fork.crew_id,
            mission_id=fork.pk,
        )
        copied = [
            MissionMessage(
                mission=fork,
                seq=m.seq,
                role=m.role,
                agent_id=m.agent_id,
                content=m.content,
                tool_calls=m.tool_calls,
                tool_call_id=m.tool_call_id,
                model=m.model,
                cost_micros=0,  # the original paid for these
                request_id=m.request_id,
            )
            for m in mission.messages.filter(seq__lt=len(point.values.get("messages") or []))
        ]
        MissionMessage.objects.bulk_create(copied)
        Mission.objects.filter(pk=fork.pk).update(steps=point.step)
        # Written before the commit wakes a worker: the fork starts from this copy.
        checkpoints.copy_state(point=point, thread_id=fork.thread_id)
    fork.refresh_from_db()
    return fork


# --- the CRM ------------------------------------------------------------------------------


@transaction.atomic
def crm_change_apply(*, change: CrmChange) -> CrmChange:
    """Ship a staged change: the account takes the new values."""
    change = CrmChange.objects.select_for_update(of=("self",)).select_related("account").get(pk=change.pk)
    if change.status != CrmChangeStatus.STAGED:
        if change.status == CrmChangeStatus.APPLIED:
            return change
        raise Conflict(f"This change is {change.status}.", code="crm_change_not_staged")
    account = change.account
    for field, value in change.changes.items():
        setattr(account, field, value)
    _clean(account)
    account.save()
    change.status = CrmChangeStatus.APPLIED
    change.applied_at = timezone.now()
    change.save(update_fields=["status", "applied_at"])
    payload: dict[str, Any] = {"change_id": change.pk, "account": account.name, "diff": change.diff()}
    if change.tool_call_id:
        payload["tool_call_id"] = change.tool_call_id
    journal_append(kind="crm.change_applied", payload=payload, mission_id=change.mission_id)
    return change
