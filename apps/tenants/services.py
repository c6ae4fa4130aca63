from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.permissions import Role

from .access import connection, workspace_schema
from .models import ApiKey, Domain, Membership, Workspace
from .provisioning import registered_defaults

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "qdk_"
# Writing last_used_at on every request would turn every API read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Provisioned:
    workspace: Workspace
    seconds: float


def _journal(workspace: Workspace, kind: str, payload: dict[str, Any]) -> None:
    """Record a change to public-schema data in the workspace's own journal, in the same
    transaction as the change (same connection: only the search path moves)."""
    from apps.audit.services import journal_append

    with workspace_schema(workspace):
        journal_append(kind=kind, payload=payload)


def _graph_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM ag_catalog.ag_graph WHERE name = %s", [name])
        return cursor.fetchone() is not None


def workspace_provision(
    *,
    name: str,
    slug: str,
    owner: Any = None,
    created_by: Any = None,
    email_domains: list[str] | None = None,
    verbosity: int = 0,
) -> Provisioned:
    """Create a workspace in one step: schema (migrated), AGE graph, domain, owner, defaults.

    If any step fails, what was created is removed again, so a half-provisioned workspace
    never exists.
    """
    started = time.perf_counter()
    workspace = Workspace(
        name=name,
        slug=slug,
        schema_name=Workspace.schema_name_for(slug),
        graph_name=Workspace.graph_name_for(slug),
        email_domains=email_domains or [],
        created_by=created_by,
    )
    try:
        workspace.full_clean()
    except Exception as exc:  # django ValidationError; re-raised in our vocabulary
        details = getattr(exc, "message_dict", {"non_field_errors": [str(exc)]})
        raise ValidationFailed("The workspace is not valid.", details=details) from exc

    try:
        workspace.save(verbosity=verbosity)  # django-tenants creates and migrates the schema here
        with transaction.atomic():
            Domain.objects.create(domain=f"{slug}.localhost", tenant=workspace, is_primary=True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT ag_catalog.create_graph(%s)", [workspace.graph_name])
            if owner is not None:
                Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
            with workspace_schema(workspace):
                for _name, func in registered_defaults():
                    func(workspace)
    except BaseException:
        logger.exception("provisioning %s failed; removing what was created", slug)
        _remove_workspace(workspace)
        raise
    seconds = time.perf_counter() - started
    logger.info("provisioned workspace %s in %.2fs", slug, seconds)
    return Provisioned(workspace=workspace, seconds=seconds)


def _remove_workspace(workspace: Workspace) -> None:
    connection.set_schema_to_public()
    if workspace.graph_name and _graph_exists(workspace.graph_name):
        with connection.cursor() as cursor:
            cursor.execute("SELECT ag_catalog.drop_graph(%s, true)", [workspace.graph_name])
    if workspace.pk:
        workspace.delete(force_drop=True)


@transaction.atomic
def workspace_update(*, workspace: Workspace, **changes: Any) -> Workspace:
    allowed = {"name", "is_active", "email_domains", "webhook_url"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(details={name: ["Cannot be changed."] for name in sorted(unknown)})
    diff = {
        field: {"from": getattr(workspace, field), "to": value}
        for field, value in changes.items()
        if getattr(workspace, field) != value
    }
    for field, value in changes.items():
        setattr(workspace, field, value)
    workspace.full_clean()
    workspace.save(update_fields=[*changes])
    if diff:
        _journal(workspace, "workspace.updated", {"changes": diff})
    return workspace


# --- memberships --------------------------------------------------------------------------


def _owners(workspace: Workspace) -> int:
    return Membership.objects.filter(workspace=workspace, role=Role.OWNER).count()


@transaction.atomic
def membership_add(*, workspace: Workspace, user: Any, role: str, by_role: str | None = None) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Unknown role {role!r}."]})
    if role == Role.OWNER and by_role not in (None, Role.OWNER):
        raise PermissionDenied("Only an owner can make someone an owner.")
    if Membership.objects.filter(workspace=workspace, user=user).exists():
        raise Conflict("This user is already a member.", code="already_member")
    membership = Membership(workspace=workspace, user=user, role=role)
    membership.full_clean()
    membership.save()
    _journal(workspace, "membership.added", {"user_id": user.pk, "username": user.get_username(), "role": role})
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, by_role: str | None = None) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Unknown role {role!r}."]})
    # Lock the workspace's owner rows so two demotions cannot both see "another owner left".
    locked = Membership.objects.select_for_update().filter(workspace=membership.workspace, role=Role.OWNER)
    owners = len(list(locked))
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner and by_role not in (None, Role.OWNER):
        raise PermissionDenied("Only an owner can grant or remove the owner role.")
    if membership.role == Role.OWNER and role != Role.OWNER and owners <= 1:
        raise Conflict("A workspace must keep at least one owner.", code="last_owner")
    previous = membership.role
    membership.role = role
    membership.full_clean()
    membership.save(update_fields=["role"])
    if previous != role:
        _journal(
            membership.workspace,
            "membership.role_changed",
            {
                "user_id": membership.user.pk,
                "username": membership.user.get_username(),
                "from_role": previous,
                "to_role": role,
            },
        )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by_role: str | None = None) -> None:
    if membership.role == Role.OWNER:
        if by_role not in (None, Role.OWNER):
            raise PermissionDenied("Only an owner can remove an owner.")
        owners = len(
            list(Membership.objects.select_for_update().filter(workspace=membership.workspace, role=Role.OWNER))
        )
        if owners <= 1:
            raise Conflict("A workspace must keep at least one owner.", code="last_owner")
    user = membership.user
    payload = {"user_id": user.pk, "username": user.get_username(), "role": membership.role}
    membership.delete()
    _journal(membership.workspace, "membership.removed", payload)


# --- API keys -----------------------------------------------------------------------------


def _hash_token(token: str) -> str:
    # The secret part has 256 bits of entropy, so a fast hash is enough (no brute force).
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *,
    workspace: Workspace,
    name: str,
    role: str = Role.OPERATOR,
    created_by: Any = None,
    expires_at: datetime | None = None,
    by_role: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its token. The token is never stored or shown again."""
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Unknown role {role!r}."]})
    if role == Role.OWNER and by_role not in (None, Role.OWNER):
        raise PermissionDenied("Only an owner can create an owner key.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(details={"expires_at": ["Must be in the future."]})
    prefix = secrets.token_hex(6)
    token = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        workspace=workspace,
        name=name,
        role=role,
        prefix=prefix,
        key_hash=_hash_token(token),
        created_by=created_by,
        expires_at=expires_at,
    )
    api_key.full_clean()
    api_key.save()
    _journal(
        workspace,
        "api_key.created",
        {
            "api_key_id": api_key.pk,
            "name": name,
            "prefix": prefix,
            "role": role,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return api_key, token


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        _journal(
            api_key.workspace,
            "api_key.revoked",
            {"api_key_id": api_key.pk, "name": api_key.name, "prefix": api_key.prefix},
        )
    return api_key


def api_key_authenticate(*, token: str) -> ApiKey:
    """The live key for ``token``, or NotFound. Constant-time comparison of the hash."""
    if not token.startswith(API_KEY_PREFIX):
        raise NotFound("Unknown API key.")
    prefix, _, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        raise NotFound("Unknown API key.")
    api_key = ApiKey.objects.select_related("workspace").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash_token(token)):
        raise NotFound("Unknown API key.")
    if not api_key.is_live:
        raise NotFound("This API key is revoked or expired.")
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
