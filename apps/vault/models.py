"""The vault's tables, in each workspace's schema.

Values are ``EncryptedTextField``s: the database holds only ciphertext bound to its row.
Crews, agents and missions belong to a higher app, so they appear here as UUIDs.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .fields import EncryptedTextField

secret_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$",
    "Use letters, digits, '_', '.', ':' and '-', starting with a letter or digit (at most 100).",
    code="invalid_secret_name",
)


class Tier(models.TextChoices):
    """How a request for the secret is decided (see apps.vault.keeper)."""

    L1 = "L1", "L1: allowed with a stated intent"
    L2 = "L2", "L2: judged"
    L3 = "L3", "L3: judged strictly"
    L4 = "L4", "L4: a human approves every use"


class SecretKind(models.TextChoices):
    API_KEY = "api_key", "API key"
    PASSWORD = "password", "Password"
    TOKEN = "token", "Token"
    PRIVATE_KEY = "private_key", "Private key"
    CONNECTION_STRING = "connection_string", "Connection string"
    OTHER = "other", "Other"


class Secret(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[secret_name_validator])
    kind = models.CharField(max_length=32, choices=SecretKind.choices, default=SecretKind.API_KEY)
    value = EncryptedTextField(null=False, blank=False)
    tier = models.CharField(max_length=2, choices=Tier.choices, default=Tier.L2)
    description = models.TextField(blank=True, help_text="What the secret is for; the judge reads it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    value_changed_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=200, blank=True, help_text="Actor label at creation.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(tier__in=Tier.values), name="vault_secret_tier_valid"),
            models.CheckConstraint(condition=Q(kind__in=SecretKind.values), name="vault_secret_kind_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class SubjectType(models.TextChoices):
    CREW = "crew", "Crew"
    AGENT = "agent", "Agent"


class GrantQuerySet(models.QuerySet["Grant"]):
    def live(self, at: datetime | None = None) -> GrantQuerySet:
        """Not revoked and, for leases, not yet expired. Evaluated per query: no caching, so a
        revocation or an expiry takes effect on the very next request."""
        now = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def for_subject(self, *, crew_id: uuid.UUID | None, agent_id: uuid.UUID | None) -> GrantQuerySet:
        match = Q(pk__in=[])
        if crew_id is not None:
            match |= Q(subject_type=SubjectType.CREW, subject_id=crew_id)
        if agent_id is not None:
            match |= Q(subject_type=SubjectType.AGENT, subject_id=agent_id)
        return self.filter(match)

    def for_mission(self, mission_id: uuid.UUID | None) -> GrantQuerySet:
        """Grants valid in ``mission_id``: unrestricted ones plus those limited to it."""
        if mission_id is None:
            return self.filter(mission_id__isnull=True)
        return self.filter(Q(mission_id__isnull=True) | Q(mission_id=mission_id))


class Grant(models.Model):
    """Gives a crew or an agent access to a secret, optionally for one mission, optionally
    as a lease that ends at ``expires_at``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    secret = models.ForeignKey(Secret, on_delete=models.CASCADE, related_name="grants")
    subject_type = models.CharField(max_length=8, choices=SubjectType.choices)
    subject_id = models.UUIDField(help_text="The crew's or the agent's id.")
    mission_id = models.UUIDField(null=True, blank=True, help_text="Only within this mission, when set.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Lease end; empty means until revoked.")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True)
    revoke_reason = models.CharField(max_length=300, blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subject_type", "subject_id"], name="vault_grant_subject")]
        constraints = [
            models.CheckConstraint(condition=Q(subject_type__in=SubjectType.values), name="vault_grant_subject_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.secret} → {self.subject_type} {self.subject_id}"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "live"


class Decision(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"
    PENDING = "pending", "Pending approval"


class AccessRecord(models.Model):
    """One Keeper decision: the access history. Written with its journal entry in one
    transaction; never updated. The secret is named by id and name (not a foreign key) so
    the history outlives a deleted secret."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    secret_id = models.UUIDField(null=True, blank=True, db_index=True)
    secret_name = models.CharField(max_length=100)
    tier = models.CharField(max_length=2, blank=True)
    crew_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    mission_id = models.UUIDField(null=True, blank=True)
    tool_name = models.CharField(max_length=200)
    intent = models.TextField(help_text="The agent's stated intent, scrubbed of the secret's value.")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason_code = models.CharField(max_length=40)
    reason = models.CharField(max_length=500)
    judge = models.CharField(max_length=40, blank=True)
    grant_id = models.UUIDField(null=True, blank=True)
    approval_reference = models.CharField(max_length=100, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["decision", "-id"], name="vault_access_decision")]
        constraints = [
            models.CheckConstraint(condition=Q(decision__in=Decision.values), name="vault_access_decision_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} {self.secret_name} for {self.tool_name}"


class ConnectionState(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    BROKEN = "broken", "Broken"


class TokenAuthMethod(models.TextChoices):
    CLIENT_SECRET_POST = "client_secret_post", "Client secret in the form body"
    CLIENT_SECRET_BASIC = "client_secret_basic", "HTTP Basic authentication"


class OAuthConnection(models.Model):
    """An OAuth 2.0 client of one provider for the workspace, with its current tokens."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.SlugField(max_length=50, unique=True, help_text="e.g. google, hubspot, zendesk")
    display_name = models.CharField(max_length=100, blank=True)
    client_id = models.CharField(max_length=300)
    client_secret = EncryptedTextField()
    token_url = models.URLField(max_length=500)
    auth_method = models.CharField(
        max_length=24, choices=TokenAuthMethod.choices, default=TokenAuthMethod.CLIENT_SECRET_POST
    )
    scopes = models.CharField(max_length=1000, blank=True, help_text="Space-separated.")
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    expires_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=ConnectionState.choices, default=ConnectionState.HEALTHY)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    broken_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=ConnectionState.values), name="vault_oauth_state_valid"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.provider

    @property
    def is_broken(self) -> bool:
        return self.state == ConnectionState.BROKEN
