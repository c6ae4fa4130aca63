"""Writes of the vault: secrets, grants and OAuth connections, each journaled in its transaction.

Values arrive as plaintext arguments and leave as ciphertext in the row; nothing here logs,
journals or returns a value. The Keeper (``keeper.py``) and token refresh (``oauth.py``) are
the read paths.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.audit.services import journal_append
from apps.core.context import current_actor
from apps.core.errors import Conflict, ValidationFailed

from .models import ConnectionState, Grant, OAuthConnection, Secret, SecretKind, SubjectType, Tier

MAX_VALUE_CHARS = 64 * 1024


def _clean(instance: models.Model, *, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        if any("already exists" in str(m) for messages in details.values() for m in messages):
            raise Conflict("An item with this name already exists.", code="already_exists", details=details) from None
        raise ValidationFailed(details=details) from None


def _check_value(field: str, value: str, *, required: bool = True) -> None:
    if not isinstance(value, str):
        raise ValidationFailed(details={field: ["Must be a string."]})
    if required and not value:
        raise ValidationFailed(details={field: ["Must not be empty."]})
    if len(value) > MAX_VALUE_CHARS:
        raise ValidationFailed(details={field: [f"At most {MAX_VALUE_CHARS} characters."]})
    if "\x00" in value:
        raise ValidationFailed(details={field: ["NUL characters are not allowed."]})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _save_new(instance: models.Model) -> None:
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError:
        # Two creators racing past full_clean's uniqueness check.
        raise Conflict("An item with this name already exists.", code="already_exists") from None


# --- secrets ----------------------------------------------------------------------------------


@sensitive_variables()
@transaction.atomic
def secret_create(
    *,
    name: str,
    value: str,
    kind: str = SecretKind.API_KEY,
    tier: str = Tier.L2,
    description: str = "",
) -> Secret:
    _check_value("value", value)
    secret = Secret(
        name=name,
        kind=kind,
        tier=tier,
        description=description,
        value=value,
        created_by=current_actor().label[:200],
    )
    _clean(secret)
    _save_new(secret)
    journal_append(
        kind="secret.created",
        payload={
            "secret_id": str(secret.pk),
            "name": secret.name,
            "kind": secret.kind,
            "tier": secret.tier,
            "key_version": secret.value.key_version,
        },
    )
    return secret


@sensitive_variables()
@transaction.atomic
def secret_update(
    *,
    secret: Secret,
    value: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    tier: str | None = None,
    description: str | None = None,
) -> Secret:
    """Change metadata and/or replace the value (``None`` leaves a part unchanged)."""
    secret = Secret.objects.select_for_update().get(pk=secret.pk)
    changed: list[str] = []
    for field, new in (("name", name), ("kind", kind), ("tier", tier), ("description", description)):
        if new is not None and getattr(secret, field) != new:
            setattr(secret, field, new)
            changed.append(field)
    if value is not None:
        _check_value("value", value)
        secret.value = value
        secret.value_changed_at = timezone.now()
        changed.append("value")
    if not changed:
        return secret
    _clean(secret)
    secret.save()
    journal_append(
        kind="secret.updated",
        payload={
            "secret_id": str(secret.pk),
            "name": secret.name,
            "changed": changed,
            "value_changed": "value" in changed,
            "key_version": secret.value.key_version,
        },
    )
    return secret


@transaction.atomic
def secret_delete(*, secret: Secret) -> None:
    grants = Grant.objects.filter(secret=secret).count()
    journal_append(
        kind="secret.deleted",
        payload={"secret_id": str(secret.pk), "name": secret.name, "grants_removed": grants},
    )
    secret.delete()


# --- grants -----------------------------------------------------------------------------------


def _as_uuid(field: str, value: Any, *, required: bool) -> uuid.UUID | None:
    if value is None or value == "":
        if required:
            raise ValidationFailed(details={field: ["This field is required."]})
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(details={field: ["Must be a UUID."]}) from None


def _required_uuid(field: str, value: Any) -> uuid.UUID:
    parsed = _as_uuid(field, value, required=True)
    assert parsed is not None
    return parsed


@transaction.atomic
def grant_create(
    *,
    secret: Secret,
    subject_type: str,
    subject_id: uuid.UUID | str,
    mission_id: uuid.UUID | str | None = None,
    expires_at: datetime | None = None,
    note: str = "",
) -> Grant:
    """Give a crew or an agent access to ``secret`` (for one mission, until ``expires_at``)."""
    if subject_type not in SubjectType.values:
        raise ValidationFailed(details={"subject_type": [f"Use one of {', '.join(SubjectType.values)}."]})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(details={"expires_at": ["A lease must end in the future."]})
    grant = Grant(
        secret=secret,
        subject_type=subject_type,
        subject_id=_required_uuid("subject_id", subject_id),
        mission_id=_as_uuid("mission_id", mission_id, required=False),
        expires_at=expires_at,
        note=note,
        created_by=current_actor().label[:200],
    )
    _clean(grant)
    grant.save(force_insert=True)
    journal_append(
        kind="secret.granted",
        payload={
            "grant_id": str(grant.pk),
            "secret_id": str(secret.pk),
            "secret_name": secret.name,
            "subject_type": grant.subject_type,
            "subject_id": str(grant.subject_id),
            "mission_id": str(grant.mission_id) if grant.mission_id else None,
            "expires_at": _iso(grant.expires_at),
            "note": note,
        },
        crew_id=grant.subject_id if grant.subject_type == SubjectType.CREW else None,
        agent_id=grant.subject_id if grant.subject_type == SubjectType.AGENT else None,
        mission_id=grant.mission_id,
    )
    return grant


@transaction.atomic
def grant_revoke(*, grant: Grant, reason: str = "") -> Grant:
    """Revoke now. The Keeper reads grants on every request, so the next request is refused."""
    grant = Grant.objects.select_for_update().select_related("secret").get(pk=grant.pk)
    if grant.revoked_at is not None:
        return grant
    grant.revoked_at = timezone.now()
    grant.revoked_by = current_actor().label[:200]
    grant.revoke_reason = reason[:300]
    grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    journal_append(
        kind="secret.revoked",
        payload={
            "grant_id": str(grant.pk),
            "secret_id": str(grant.secret_id),
            "secret_name": grant.secret.name,
            "subject_type": grant.subject_type,
            "subject_id": str(grant.subject_id),
            "reason": grant.revoke_reason,
        },
        crew_id=grant.subject_id if grant.subject_type == SubjectType.CREW else None,
        agent_id=grant.subject_id if grant.subject_type == SubjectType.AGENT else None,
        mission_id=grant.mission_id,
    )
    return grant


# --- OAuth connections ------------------------------------------------------------------------


@sensitive_variables()
@transaction.atomic
def oauth_connection_create(
    *,
    provider: str,
    client_id: str,
    client_secret: str,
    token_url: str,
    scopes: str = "",
    refresh_token: str | None = None,
    access_token: str | None = None,
    expires_at: datetime | None = None,
    auth_method: str | None = None,
    display_name: str = "",
) -> OAuthConnection:
    _check_value("client_secret", client_secret)
    connection = OAuthConnection(
        provider=provider,
        display_name=display_name,
        client_id=client_id,
        client_secret=client_secret,
        token_url=token_url,
        scopes=scopes,
        expires_at=expires_at,
    )
    if auth_method:
        connection.auth_method = auth_method
    for field, token in (("access_token", access_token), ("refresh_token", refresh_token)):
        if token is not None:
            _check_value(field, token)
            setattr(connection, field, token)
    _clean(connection)
    _save_new(connection)
    journal_append(
        kind="oauth.connected",
        payload={"connection_id": str(connection.pk), "provider": provider, "expires_at": _iso(expires_at)},
    )
    return connection


_UNSET: Any = object()


@sensitive_variables()
@transaction.atomic
def oauth_connection_update(
    *,
    connection: OAuthConnection,
    client_id: str | None = None,
    client_secret: str | None = None,
    token_url: str | None = None,
    scopes: str | None = None,
    refresh_token: str | None = None,
    access_token: str | None = None,
    expires_at: datetime | None = _UNSET,
    auth_method: str | None = None,
    display_name: str | None = None,
) -> OAuthConnection:
    """Change settings or install new tokens (a reconnect). New tokens make it healthy again."""
    connection = OAuthConnection.objects.select_for_update().get(pk=connection.pk)
    changed: list[str] = []
    for field, new in (
        ("client_id", client_id),
        ("token_url", token_url),
        ("scopes", scopes),
        ("auth_method", auth_method),
        ("display_name", display_name),
    ):
        if new is not None and getattr(connection, field) != new:
            setattr(connection, field, new)
            changed.append(field)
    for field, secret in (
        ("client_secret", client_secret),
        ("access_token", access_token),
        ("refresh_token", refresh_token),
    ):
        if secret is not None:
            _check_value(field, secret)
            setattr(connection, field, secret)
            changed.append(field)
    if expires_at is not _UNSET:
        connection.expires_at = expires_at
        changed.append("expires_at")
    if refresh_token is not None or access_token is not None:
        connection.state = ConnectionState.HEALTHY
        connection.broken_at = None
        connection.last_error_code = ""
        connection.last_error = ""
    if not changed:
        return connection
    _clean(connection)
    connection.save()
    journal_append(
        kind="oauth.connected",
        payload={
            "connection_id": str(connection.pk),
            "provider": connection.provider,
            "expires_at": _iso(connection.expires_at),
            "changed": changed,
        },
    )
    return connection
