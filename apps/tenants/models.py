from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django_tenants.models import DomainMixin, TenantMixin

from apps.core.permissions import Role, roles_allowing

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
RESERVED_SLUGS = frozenset({"admin", "api", "static", "public", "ws", "www", "accounts"})


def validate_workspace_slug(value: str) -> None:
    if not SLUG_RE.match(value) or value.endswith("-") or "--" in value:
        raise ValidationError(
            "Use 2-40 lowercase letters, digits and single hyphens, starting with a letter.",
            code="invalid_slug",
        )
    if value in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved.", code="reserved_slug")


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def active(self) -> WorkspaceQuerySet:
        return self.filter(is_active=True)

    def restrict(self, user: AbstractBaseUser | AnonymousUser, action: str) -> WorkspaceQuerySet:
        """Workspaces in which ``user`` holds a role that allows ``action``."""
        if not user.is_authenticated:
            return self.none()
        roles = roles_allowing(action)
        return self.filter(memberships__user=user, memberships__role__in=roles).distinct()


class Workspace(TenantMixin):
    """A tenant: its own Postgres schema and its own AGE graph."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=40, unique=True, validators=[validate_workspace_slug])
    graph_name = models.CharField(max_length=63, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    email_domains = models.JSONField(
        default=list,
        blank=True,
        help_text="Mail domains that belong to this workspace (recipients elsewhere are external).",
    )
    webhook_url = models.URLField(blank=True, help_text="Optional webhook for notifications.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # The provisioning service creates and migrates the schema itself (one step, timed).
    auto_create_schema = True
    auto_drop_schema = False

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def schema_name_for(slug: str) -> str:
        return "w_" + slug.replace("-", "_")

    @staticmethod
    def graph_name_for(slug: str) -> str:
        # AGE makes a schema per graph, so it must not collide with the workspace schema.
        return "g_" + slug.replace("-", "_")


class Domain(DomainMixin):
    """Required by django-tenants. Browsers route by /w/<slug>/ and the API by key, so
    domains are informational (the hostname a deployment may put in front of a workspace)."""

    def __str__(self) -> str:
        return self.domain


class MembershipQuerySet(models.QuerySet["Membership"]):
    def for_workspace(self, workspace: Workspace) -> MembershipQuerySet:
        return self.filter(workspace=workspace)


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique_user_workspace"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]
        ordering = ["workspace__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.role}"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def live(self) -> ApiKeyQuerySet:
        from django.utils import timezone

        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class ApiKey(models.Model):
    """A workspace API key. Only a SHA-256 of the secret is stored; the key is shown once."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(role__in=Role.values), name="apikey_role_valid")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_live(self) -> bool:
        from django.utils import timezone

        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    def as_log_dict(self) -> dict[str, Any]:
        return {"id": self.pk, "name": self.name, "prefix": self.prefix, "role": self.role}
