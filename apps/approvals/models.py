"""Policies (which tool calls need whom), the gate's verdicts, approval requests and their events.

Everything lives in the workspace's schema. Crews, agents and missions are referred to by
UUID, never by foreign key: ``crews`` depends on ``approvals``, not the other way round.
People are referred to by user id (public-schema users), with their label copied at the time,
so the record reads the same after a rename.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.core.permissions import roles_allowing

from . import predicates


class AutonomyLevel(models.TextChoices):
    """A crew's autonomy level; it supplies the gate's default when no policy matches."""

    STRICT = "strict", "Strict: every side-effecting tool waits for approval"
    GUIDED = "guided", "Guided: outward side effects wait, internal ones are queued"
    TRUSTED = "trusted", "Trusted: outward side effects are queued for review, the agent goes on"
    FULL = "full", "Full: no approvals"


class PolicyAction(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"
    REQUIRE_SYNC = "require_sync", "Require approval; the mission waits"
    REQUIRE_ASYNC = "require_async", "Require approval; queued, the agent goes on"


APPROVAL_ACTIONS = frozenset({PolicyAction.REQUIRE_SYNC, PolicyAction.REQUIRE_ASYNC})


class TimeoutAction(models.TextChoices):
    DENY = "deny", "Deny"
    APPROVE = "approve", "Approve"
    ESCALATE = "escalate", "Escalate to another role"


class FinalTimeoutAction(models.TextChoices):
    """What happens when an escalated request times out again: no second escalation, so a
    request cannot bounce between roles for ever."""

    DENY = "deny", "Deny"
    APPROVE = "approve", "Approve"


MIN_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_REQUIRED_APPROVALS = 10


def decider_roles() -> list[str]:
    return [str(role) for role in roles_allowing("approvals.decide")]


class PolicyQuerySet(models.QuerySet["Policy"]):
    def enabled(self) -> PolicyQuerySet:
        return self.filter(enabled=True)

    def in_order(self) -> PolicyQuerySet:
        # Deterministic: equal priorities fall back to the older policy, then the id.
        return self.order_by("priority", "created_at", "id")


class Policy(models.Model):
    """Which tool calls need whom. The first enabled policy (lowest priority number) whose
    conditions all hold decides; with none, the crew's autonomy level does."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    priority = models.PositiveIntegerField(default=100, help_text="Lower numbers are evaluated first.")

    # --- what it matches -------------------------------------------------------------------
    tool_pattern = models.CharField(
        max_length=200,
        default="*",
        help_text="Tool name glob (send_*, crm_*); alternatives separated by |.",
    )
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'All must hold. e.g. [{"path": "to", "op": "outside_domains"}, '
            '{"path": "env", "op": "eq", "value": "prod"}, {"path": "amount", "op": "gt", "value": 1000}]. '
            "Operators: " + ", ".join(predicates.OPERATORS) + "."
        ),
    )
    min_estimated_cost_microusd = models.BigIntegerField(
        null=True, blank=True, help_text="Matches only calls estimated to cost at least this (micro-USD)."
    )
    side_effects_only = models.BooleanField(default=False, help_text="Match only tools that have side effects.")
    crew_ids = models.JSONField(default=list, blank=True, help_text="Crew UUIDs; empty: every crew.")
    agent_ids = models.JSONField(default=list, blank=True, help_text="Agent UUIDs; empty: every agent.")

    # --- what it does ----------------------------------------------------------------------
    action = models.CharField(max_length=16, choices=PolicyAction.choices, default=PolicyAction.REQUIRE_SYNC)
    approver_roles = models.JSONField(
        default=list, blank=True, help_text="Roles that may decide; empty with no users: every role that may decide."
    )
    approver_user_ids = models.JSONField(default=list, blank=True, help_text="Named users who may decide (user ids).")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    segregation_of_duties = models.BooleanField(
        default=True, help_text="Whoever started the mission cannot approve its actions."
    )
    timeout_seconds = models.PositiveIntegerField(default=3600)
    timeout_action = models.CharField(max_length=16, choices=TimeoutAction.choices, default=TimeoutAction.DENY)
    escalate_to_roles = models.JSONField(default=list, blank=True, help_text="Roles added when escalating.")
    escalation_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    escalation_timeout_action = models.CharField(
        max_length=16, choices=FinalTimeoutAction.choices, default=FinalTimeoutAction.DENY
    )

    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, editable=False)

    objects = PolicyQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "created_at", "id"]
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(condition=Q(action__in=PolicyAction.values), name="policy_action_valid"),
            models.CheckConstraint(condition=Q(required_approvals__gte=1), name="policy_required_approvals_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.priority}, {self.action})"

    @property
    def requires_approval(self) -> bool:
        return self.action in APPROVAL_ACTIONS

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def err(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        self.tool_pattern = "|".join(p.strip() for p in (self.tool_pattern or "").split("|") if p.strip())
        if not self.tool_pattern:
            err("tool_pattern", "Name at least one tool pattern (use * for every tool).")
        try:
            self.conditions = predicates.validate_conditions(self.conditions)
        except predicates.InvalidCondition as exc:
            err("conditions", str(exc))
        for field in ("crew_ids", "agent_ids"):
            try:
                setattr(self, field, _uuid_list(getattr(self, field)))
            except ValueError as exc:
                err(field, str(exc))
        if self.min_estimated_cost_microusd is not None and self.min_estimated_cost_microusd < 0:
            err("min_estimated_cost_microusd", "Costs are never negative.")

        allowed = decider_roles()
        for field in ("approver_roles", "escalate_to_roles"):
            value = getattr(self, field)
            if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
                err(field, "A list of role names.")
                continue
            bad = [r for r in value if r not in allowed]
            if bad:
                err(field, f"Only roles that may decide approvals can be named ({', '.join(allowed)}); not {bad}.")
            setattr(self, field, sorted(set(value)))
        users = self.approver_user_ids
        if not isinstance(users, list) or not all(isinstance(u, int) and not isinstance(u, bool) for u in users):
            err("approver_user_ids", "A list of user ids.")
        else:
            self.approver_user_ids = sorted(set(users))

        if not 1 <= self.required_approvals <= MAX_REQUIRED_APPROVALS:
            err("required_approvals", f"Between 1 and {MAX_REQUIRED_APPROVALS}.")
        if not MIN_TIMEOUT_SECONDS <= self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            err("timeout_seconds", f"Between {MIN_TIMEOUT_SECONDS} s and {MAX_TIMEOUT_SECONDS} s.")
        if self.timeout_action == TimeoutAction.ESCALATE:
            if not self.escalate_to_roles:
                err("escalate_to_roles", "Name the role(s) to escalate to.")
            if self.escalation_timeout_seconds is None:
                err("escalation_timeout_seconds", "An escalated request needs its own timeout.")
        if self.escalation_timeout_seconds is not None and not (
            MIN_TIMEOUT_SECONDS <= self.escalation_timeout_seconds <= MAX_TIMEOUT_SECONDS
        ):
            err("escalation_timeout_seconds", f"Between {MIN_TIMEOUT_SECONDS} s and {MAX_TIMEOUT_SECONDS} s.")
        if self.requires_approval and not self.approver_roles and not self.approver_user_ids:
            # "Who may decide" is never left open: an empty list means every deciding role.
            self.approver_roles = sorted(allowed)
        if errors:
            raise ValidationError(errors)

    def snapshot(self) -> dict[str, Any]:
        """What a request remembers of the policy that matched it (policies change later)."""
        return {
            "id": str(self.pk),
            "name": self.name,
            "version": self.version,
            "priority": self.priority,
            "action": self.action,
            "tool_pattern": self.tool_pattern,
            "conditions": self.conditions,
        }


def _uuid_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("A list of UUIDs.")
    out: list[str] = []
    for item in value:
        try:
            out.append(str(uuid.UUID(str(item))))
        except ValueError:
            raise ValueError(f"{item!r} is not a UUID.") from None
    return sorted(set(out))


class RequestMode(models.TextChoices):
    SYNC = "sync", "Sync: the mission waits"
    ASYNC = "async", "Async: queued, the agent goes on"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    CANCELLED = "cancelled", "Cancelled"


class Resolution(models.TextChoices):
    NONE = "", "Not resolved"
    DECISION = "decision", "Decided by a reviewer"
    TIMEOUT = "timeout", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


class ApprovalRequestQuerySet(models.QuerySet["ApprovalRequest"]):
    def pending(self) -> ApprovalRequestQuerySet:
        return self.filter(status=RequestStatus.PENDING)

    def resolved(self) -> ApprovalRequestQuerySet:
        return self.exclude(status=RequestStatus.PENDING)

    def decidable_by(self, *, role: str, user_id: int | None) -> ApprovalRequestQuerySet:
        """Requests this person may decide: named by role or by id, and not their own mission
        when segregation of duties applies."""
        eligible = Q(approver_roles__contains=[role])
        if user_id is not None:
            eligible |= Q(approver_user_ids__contains=[user_id])
        queryset = self.filter(eligible)
        if user_id is not None:
            queryset = queryset.exclude(segregation_of_duties=True, started_by_user_id=user_id)
        return queryset


class ApprovalRequest(models.Model):
    """One tool call waiting for people. Created by the gate, resolved by reviewers or the sweep."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mission_id = models.UUIDField(db_index=True)
    crew_id = models.UUIDField()
    agent_id = models.UUIDField()
    tool_call_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    edited_arguments = models.JSONField(null=True, blank=True)
    diff = models.JSONField(null=True, blank=True)
    reasoning = models.TextField(blank=True)
    has_side_effects = models.BooleanField(default=True)
    estimated_cost_microusd = models.BigIntegerField(default=0)
    autonomy_level = models.CharField(max_length=16, blank=True)
    mode = models.CharField(max_length=8, choices=RequestMode.choices)

    # Display information handed over by the runtime at gate time.
    crew_name = models.CharField(max_length=200, blank=True)
    agent_name = models.CharField(max_length=200, blank=True)
    mission_goal = models.TextField(blank=True)
    mission_cost_microusd = models.BigIntegerField(default=0)
    started_by_user_id = models.IntegerField(null=True, blank=True)

    # The policy that matched, and a copy of what it said at the time.
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    policy_snapshot = models.JSONField(default=dict, blank=True)
    match_reason = models.TextField(blank=True)

    # Who may decide, copied from the policy (escalation widens it).
    approver_roles = models.JSONField(default=list, blank=True)
    approver_user_ids = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    segregation_of_duties = models.BooleanField(default=True)

    # The clock.
    deadline = models.DateTimeField(null=True, blank=True)
    timeout_action = models.CharField(max_length=16, choices=TimeoutAction.choices, default=TimeoutAction.DENY)
    escalate_to_roles = models.JSONField(default=list, blank=True)
    escalation_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    escalation_timeout_action = models.CharField(
        max_length=16, choices=FinalTimeoutAction.choices, default=FinalTimeoutAction.DENY
    )
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

    # The outcome.
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, default=Resolution.NONE, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by_label = models.CharField(max_length=150, blank=True)
    decided_by_user_id = models.IntegerField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    executed_at = models.DateTimeField(null=True, blank=True, help_text="When the runtime ran the approved call.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ApprovalRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The runtime re-runs its tool node after an interrupt: one request per tool call.
            models.UniqueConstraint(fields=["mission_id", "tool_call_id"], name="approvalrequest_one_per_tool_call"),
            models.CheckConstraint(condition=Q(status__in=RequestStatus.values), name="approvalrequest_status_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "deadline"], name="approvalrequest_sweep"),
            models.Index(fields=["status", "-created_at"], name="approvalrequest_inbox"),
        ]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.status})"

    @property
    def final_arguments(self) -> dict[str, Any]:
        return self.edited_arguments if self.edited_arguments is not None else self.arguments

    @property
    def is_pending(self) -> bool:
        return self.status == RequestStatus.PENDING

    @property
    def was_edited(self) -> bool:
        return self.edited_arguments is not None

    def may_be_decided_by(self, *, role: str, user_id: int | None) -> bool:
        named = role in self.approver_roles or (user_id is not None and user_id in self.approver_user_ids)
        return named and not self.blocked_by_segregation(user_id)

    def blocked_by_segregation(self, user_id: int | None) -> bool:
        return bool(self.segregation_of_duties and user_id is not None and user_id == self.started_by_user_id)


class GateVerdict(models.Model):
    """The gate's answer for one tool call, kept so that asking again (the runtime re-runs
    its node after an interrupt, or after a crash) returns the same answer: a call denied
    once stays denied even if a policy changes in between."""

    mission_id = models.UUIDField()
    tool_call_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=200)
    action = models.CharField(max_length=8)  # allow / deny / wait / queue
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=16)  # policy / autonomy
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy_name = models.CharField(max_length=100, blank=True)
    request = models.OneToOneField(
        ApprovalRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="verdict"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mission_id", "tool_call_id"], name="gateverdict_one_per_tool_call"),
        ]

    def __str__(self) -> str:
        return f"{self.tool_name}: {self.action}"


class EventKind(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVE = "approve", "Approved"
    DENY = "deny", "Denied"
    COMMENT = "comment", "Commented"
    ESCALATED = "escalated", "Escalated"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


class ApprovalEvent(models.Model):
    """The history of a request: votes, comments, edits, escalation, timeout."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    actor_kind = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=150)
    user_id = models.IntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    # For approvals: the arguments approved, and their hash (an approval counts only towards
    # the arguments it saw; an edit after it needs fresh approvals).
    arguments = models.JSONField(null=True, blank=True)
    arguments_hash = models.CharField(max_length=64, blank=True)
    edited = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["request", "kind"], name="approvalevent_request_kind")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor_label}"
