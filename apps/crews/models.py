"""Crews, their agents, missions, and what the runtime sees of a mission (messages, tool calls).

All of it lives in the workspace's schema. Crew, Agent and Mission have UUID keys because
lower apps (approvals, budgets, the journal) refer to them by UUID, never by foreign key.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class Autonomy(models.TextChoices):
    # Read by the approvals gate for its defaults (strict: every side-effecting tool waits).
    STRICT = "strict", "Strict"
    GUIDED = "guided", "Guided"
    TRUSTED = "trusted", "Trusted"
    FULL = "full", "Full"


class CrewQuerySet(models.QuerySet["Crew"]):
    def active(self) -> CrewQuerySet:
        return self.filter(is_active=True)


class Crew(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    purpose = models.TextField(blank=True)
    autonomy = models.CharField(max_length=16, choices=Autonomy.choices, default=Autonomy.GUIDED)
    default_model = models.CharField(max_length=100, help_text="Model catalog name used by agents without their own.")
    http_allowlist = models.JSONField(
        default=list, blank=True, help_text="Hosts (host or host:port) the http_request tool may reach."
    )
    max_steps = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Steps (model turns and tool calls) a mission may take.",
    )
    max_wall_seconds = models.PositiveIntegerField(
        default=900, validators=[MinValueValidator(1)], help_text="Running time a mission may take (waits excluded)."
    )
    settings = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CrewQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(autonomy__in=Autonomy.values), name="crew_autonomy_valid")]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    crew = models.ForeignKey(Crew, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=100, help_text="What this agent does in the crew (triage, responder...).")
    instructions = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True, help_text="Model catalog name; blank: the crew's default.")
    tools = models.JSONField(default=list, blank=True, help_text="Names of the tools this agent may call.")
    settings = models.JSONField(default=dict, blank=True, help_text="temperature, max_tokens...")
    position = models.PositiveSmallIntegerField(default=0, help_text="The first agent (lowest) starts a mission.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["crew__name", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["crew", "name"], name="agent_unique_name_in_crew")]

    def __str__(self) -> str:
        return f"{self.name} ({self.crew.name})" if self.crew_id else self.name

    @property
    def model_name(self) -> str:
        return self.model or self.crew.default_model


class MissionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = frozenset({MissionStatus.COMPLETED, MissionStatus.FAILED, MissionStatus.CANCELLED})
# A worker may claim these (running: only when its claimant is gone; see runtime.claims).
RUNNABLE_STATUSES = (MissionStatus.QUEUED, MissionStatus.RUNNING)


class MissionControl(models.TextChoices):
    NONE = "", "None"
    CANCEL = "cancel", "Cancel"
    PAUSE = "pause", "Pause"


class MissionQuerySet(models.QuerySet["Mission"]):
    def active(self) -> MissionQuerySet:
        return self.exclude(status__in=FINISHED_STATUSES)


class Mission(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    crew = models.ForeignKey(Crew, on_delete=models.PROTECT, related_name="missions")
    goal = models.TextField()
    input = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=MissionStatus.choices, default=MissionStatus.QUEUED)
    # Requested by a person; the runtime applies it at the mission's next step.
    control = models.CharField(max_length=10, choices=MissionControl.choices, default="", blank=True)
    thread_id = models.CharField(max_length=100, unique=True, help_text="LangGraph thread of the checkpoints.")
    current_agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cost_micros = models.BigIntegerField(default=0)
    steps = models.PositiveIntegerField(default=0, help_text="Steps taken: model turns and tool calls.")
    model_calls = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_wall_seconds = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    running_seconds = models.FloatField(default=0.0, help_text="Time spent running so far, waits excluded.")
    result = models.TextField(blank=True)
    error = models.JSONField(default=dict, blank=True)
    halt_reason = models.CharField(max_length=40, blank=True)
    # Sync approval: the request the mission waits on, and the decision to resume it with.
    waiting_on = models.CharField(max_length=100, blank=True)
    resume_payload = models.JSONField(null=True, blank=True)
    forked_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    fork_checkpoint_id = models.CharField(max_length=100, blank=True)
    created_by = models.JSONField(default=dict, blank=True, help_text="The actor who started it.")
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    # Worker claim: the claimant's database application_name and a lease it renews.
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker claimed it.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="mission_status_created"),
            models.Index(fields=["crew", "-created_at"], name="mission_crew_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=MissionStatus.values), name="mission_status_valid"),
            models.CheckConstraint(condition=Q(control__in=MissionControl.values), name="mission_control_valid"),
            models.CheckConstraint(condition=Q(cost_micros__gte=0), name="mission_cost_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.goal[:60]} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class MessageRole(models.TextChoices):
    SYSTEM = "system", "System"
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    TOOL = "tool", "Tool"


class MissionMessage(models.Model):
    """A message of the mission's conversation, as the runtime sent it to or got it from a model.

    ``seq`` is the message's index in the graph state, so a step that runs again after a crash
    rewrites the same row instead of adding one.
    """

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    content = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    cost_micros = models.BigIntegerField(default=0)
    request_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mission", "seq"]
        constraints = [models.UniqueConstraint(fields=["mission", "seq"], name="mission_message_unique_seq")]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"


class ToolCallStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    INVALID = "invalid", "Invalid (not executed)"
    WAITING = "waiting", "Waiting for approval"
    QUEUED = "queued", "Queued for review"
    DENIED = "denied", "Denied"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


TOOL_CALL_TERMINAL = frozenset(
    {ToolCallStatus.INVALID, ToolCallStatus.DENIED, ToolCallStatus.SUCCEEDED, ToolCallStatus.FAILED}
)


class ToolCall(models.Model):
    """One tool call the model made, and its execution record.

    Unique per (mission, tool_call_id): the runtime looks here before running a tool, so a
    step that runs again after a crash never runs a side-effecting tool a second time.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="tool_call_records")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tool_call_id = models.CharField(max_length=100)
    tool = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict, blank=True)
    # Arguments as a reviewer edited them before approving (the original stays in ``arguments``).
    approved_arguments = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ToolCallStatus.choices, default=ToolCallStatus.REQUESTED)
    side_effects = models.BooleanField(default=False)
    approval_request_id = models.CharField(max_length=100, blank=True)
    decision = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Queued for async review: its outcome reaches the model later, as an update message.
    queued = models.BooleanField(default=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["mission", "tool_call_id"], name="toolcall_unique_per_mission"),
            models.CheckConstraint(condition=Q(status__in=ToolCallStatus.values), name="toolcall_status_valid"),
        ]
        indexes = [models.Index(fields=["status"], name="toolcall_status")]

    def __str__(self) -> str:
        return f"{self.tool} [{self.tool_call_id}] {self.status}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TOOL_CALL_TERMINAL

    @property
    def effective_arguments(self) -> dict[str, Any]:
        return self.approved_arguments if self.approved_arguments is not None else self.arguments


# --- the workspace's small CRM (what crm_lookup reads and crm_stage_update changes) ----------


class CrmStage(models.TextChoices):
    LEAD = "lead", "Lead"
    TRIAL = "trial", "Trial"
    CUSTOMER = "customer", "Customer"
    AT_RISK = "at_risk", "At risk"
    CHURNED = "churned", "Churned"


CRM_EDITABLE_FIELDS = ("stage", "owner_email", "plan", "notes")


class CrmAccount(models.Model):
    name = models.CharField(max_length=200, unique=True)
    domain = models.CharField(max_length=253, blank=True)
    stage = models.CharField(max_length=16, choices=CrmStage.choices, default=CrmStage.LEAD)
    owner_email = models.EmailField(blank=True)
    plan = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    contacts = models.JSONField(default=list, blank=True, help_text='[{"name", "email", "title"}]')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "CRM account"

    def __str__(self) -> str:
        return self.name

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "name": self.name,
            "domain": self.domain,
            "stage": self.stage,
            "owner_email": self.owner_email,
            "plan": self.plan,
            "notes": self.notes,
            "contacts": self.contacts,
        }


class CrmChangeStatus(models.TextChoices):
    STAGED = "staged", "Staged"
    APPLIED = "applied", "Applied"
    DISCARDED = "discarded", "Discarded"


class CrmChange(models.Model):
    """A change to a CRM account staged by a tool call; it ships (changes the account) when applied."""

    account = models.ForeignKey(CrmAccount, on_delete=models.CASCADE, related_name="changes")
    changes = models.JSONField(help_text="field -> new value")
    before = models.JSONField(default=dict, help_text="field -> value when staged")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=CrmChangeStatus.choices, default=CrmChangeStatus.STAGED)
    mission_id = models.UUIDField(null=True, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "CRM change"
        constraints = [
            models.UniqueConstraint(
                fields=["mission_id", "tool_call_id"],
                condition=~Q(tool_call_id=""),
                name="crmchange_unique_tool_call",
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.changes} ({self.status})"

    def diff(self) -> list[dict[str, Any]]:
        return [
            {"field": field, "before": self.before.get(field), "after": value}
            for field, value in sorted(self.changes.items())
        ]
