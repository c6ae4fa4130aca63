"""Per-workspace routing settings and the record of every model call (workspace schema).

Models are named by their catalog ``model_id`` (a string); the catalog lives in the public
schema and is validated by the services, not by a cross-schema foreign key.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class WorkspaceLlmSettings(models.Model):
    """Singleton per workspace: its default model (empty: the global default)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    default_model = models.CharField(max_length=100, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "workspace LLM settings"
        verbose_name_plural = "workspace LLM settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="workspacellmsettings_singleton")]

    def __str__(self) -> str:
        return f"default model: {self.default_model or '(global default)'}"


class TriggerScope(models.TextChoices):
    ANY = "any", "Any budget of the call"
    WORKSPACE = "workspace", "The workspace budget"
    CREW = "crew", "The crew's budget"
    MISSION = "mission", "The mission's budget"
    AGENT = "agent", "The agent's budget"


class RoutingRule(models.Model):
    """Move a call to a cheaper model once a budget it counts against passes its warning
    threshold. Rules apply to every call, or only to one crew's or one agent's calls."""

    name = models.CharField(max_length=100)
    trigger_scope = models.CharField(max_length=10, choices=TriggerScope.choices, default=TriggerScope.ANY)
    crew_id = models.UUIDField(null=True, blank=True, help_text="Only calls of this crew (empty: any).")
    agent_id = models.UUIDField(null=True, blank=True, help_text="Only calls of this agent (empty: any).")
    to_model = models.CharField(max_length=100, help_text="Catalog model to use; must be of a lower tier.")
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower runs first; the first match wins.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.name}: -> {self.to_model} when {self.trigger_scope} budget warns"


class CallStatus(models.TextChoices):
    RESERVED = "reserved", "In flight"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    BLOCKED = "blocked", "Blocked by a budget"


class LlmCall(models.Model):
    """One logical model call, keyed by its request id: the idempotency record of the gateway
    (a repeated request id returns the stored response, never charges twice)."""

    # Unique through a constraint, not unique=True: that would also add a LIKE-pattern index
    # nobody queries, written on every call.
    request_id = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=CallStatus.choices)
    crew_id = models.UUIDField(null=True, blank=True)
    mission_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    model = models.CharField(max_length=100, blank=True, default="")
    provider = models.CharField(max_length=40, blank=True, default="")
    route_reason = models.TextField(blank=True, default="")
    reservation_id = models.UUIDField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    stop_reason = models.CharField(max_length=20, blank=True, default="")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost_microusd = models.BigIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-id"]
        verbose_name = "LLM call"
        constraints = [models.UniqueConstraint(fields=["request_id"], name="llmcall_request_unique")]
        indexes = [
            models.Index(fields=["created_at"], name="llmcall_created"),
            models.Index(fields=["mission_id", "id"], name="llmcall_mission", condition=Q(mission_id__isnull=False)),
            models.Index(fields=["status", "id"], name="llmcall_status"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status} {self.model}"
