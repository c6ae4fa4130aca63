"""Reads of the vault. Nothing here returns a plaintext except ``visible_secret_values``,
which exists so that outputs can be scrubbed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.views.decorators.debug import sensitive_variables

from .crypto import DecryptionFailed
from .models import AccessRecord, ConnectionState, Grant, OAuthConnection, Secret


def secret_list() -> QuerySet[Secret]:
    return Secret.objects.all().order_by("name")


def secret_get(*, pk: uuid.UUID | str) -> Secret:
    return Secret.objects.get(pk=pk)


def grant_list(
    *,
    secret_id: uuid.UUID | str | None = None,
    subject_id: uuid.UUID | str | None = None,
    live_only: bool = False,
) -> QuerySet[Grant]:
    queryset = Grant.objects.select_related("secret")
    if secret_id is not None:
        queryset = queryset.filter(secret_id=secret_id)
    if subject_id is not None:
        queryset = queryset.filter(subject_id=subject_id)
    if live_only:
        queryset = queryset.live()
    return queryset.order_by("-created_at")


def live_grants_with_secrets(
    *, crew_id: uuid.UUID | None, agent_id: uuid.UUID | None, mission_id: uuid.UUID | None
) -> list[Grant]:
    """Every live grant this crew/agent holds in this mission, with its secret, in one query.

    Read from the database on every call: revoking or letting a lease expire needs no restart.
    """
    return list(
        Grant.objects.live()
        .for_subject(crew_id=crew_id, agent_id=agent_id)
        .for_mission(mission_id)
        .select_related("secret")
    )


def best_grant(grants: list[Grant]) -> Grant | None:
    """The grant a decision cites: agent grants over crew grants, mission-bound over open
    ones, no expiry over the longest lease."""
    if not grants:
        return None
    return max(
        grants,
        key=lambda g: (
            g.subject_type == "agent",
            g.mission_id is not None,
            g.expires_at is None,
            g.expires_at.timestamp() if g.expires_at else 0.0,
        ),
    )


def dead_grant_reason(
    *,
    secret: Secret,
    crew_id: uuid.UUID | None,
    agent_id: uuid.UUID | None,
    mission_id: uuid.UUID | None,
) -> tuple[str, str]:
    """Why there is no live grant: (reason_code, reason)."""
    grants = list(Grant.objects.filter(secret=secret).for_subject(crew_id=crew_id, agent_id=agent_id))
    if not grants:
        return "no_grant", "No grant gives this crew or agent access to the secret."
    in_mission = [g for g in grants if g.mission_id is None or g.mission_id == mission_id]
    if not in_mission:
        return "wrong_mission", "The grants for this secret are limited to other missions."
    if all(g.revoked_at is not None for g in in_mission):
        return "grant_revoked", "The grant for this secret was revoked."
    return "lease_expired", "The lease on this secret has expired."


@sensitive_variables()
def visible_secret_values(
    *, crew_id: uuid.UUID | None, agent_id: uuid.UUID | None, mission_id: uuid.UUID | None
) -> list[str]:
    """Plaintexts of every secret this crew/agent holds a live grant to in this mission.

    For scrubbing only: a tool output or a journal payload is cleaned of all of them. Values
    that no longer decrypt (a retired key) are skipped: they cannot be handed out either.
    """
    grants = live_grants_with_secrets(crew_id=crew_id, agent_id=agent_id, mission_id=mission_id)
    return reveal_all({g.secret_id: g.secret for g in grants}.values())


@sensitive_variables()
def reveal_all(secrets: Iterable[Secret]) -> list[str]:
    values: list[str] = []
    for secret in secrets:
        try:
            values.append(secret.value.reveal())
        except DecryptionFailed:
            continue
    return values


def access_list(
    *,
    secret_id: uuid.UUID | str | None = None,
    decision: str | None = None,
    crew_id: uuid.UUID | str | None = None,
    agent_id: uuid.UUID | str | None = None,
    mission_id: uuid.UUID | str | None = None,
) -> QuerySet[AccessRecord]:
    queryset = AccessRecord.objects.all()
    if secret_id is not None:
        queryset = queryset.filter(secret_id=secret_id)
    if decision:
        queryset = queryset.filter(decision=decision)
    if crew_id is not None:
        queryset = queryset.filter(crew_id=crew_id)
    if agent_id is not None:
        queryset = queryset.filter(agent_id=agent_id)
    if mission_id is not None:
        queryset = queryset.filter(mission_id=mission_id)
    return queryset.order_by("-id")


def oauth_connection_list() -> QuerySet[OAuthConnection]:
    return OAuthConnection.objects.all().order_by("provider")


@dataclass(frozen=True)
class ConnectionStatus:
    """What a tool (or a person) may know about a connection: its health, never its tokens."""

    id: uuid.UUID
    provider: str
    state: str
    expires_at: datetime | None
    last_refreshed_at: datetime | None
    last_error_code: str
    last_error: str
    broken_at: datetime | None

    @property
    def healthy(self) -> bool:
        return self.state == ConnectionState.HEALTHY


def oauth_connection_status(*, provider: str) -> ConnectionStatus:
    """Resolve a provider to its connection's state. Raises OAuthConnection.DoesNotExist."""
    c = OAuthConnection.objects.get(provider=provider)
    return ConnectionStatus(
        id=c.id,
        provider=c.provider,
        state=c.state,
        expires_at=c.expires_at,
        last_refreshed_at=c.last_refreshed_at,
        last_error_code=c.last_error_code,
        last_error=c.last_error,
        broken_at=c.broken_at,
    )
