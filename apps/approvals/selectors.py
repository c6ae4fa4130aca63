"""Reads of the approvals app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch

from apps.core.errors import NotFound

from .models import ApprovalEvent, ApprovalRequest, ApprovalRequestQuerySet, Policy, PolicyQuerySet, RequestStatus
from .services import Decider

DECIDED_IN_INBOX = 50


def policy_list() -> PolicyQuerySet:
    return Policy.objects.in_order()


def policy_get(*, policy_id: uuid.UUID | str) -> Policy:
    policy = Policy.objects.filter(pk=_uuid(policy_id)).first()
    if policy is None:
        raise NotFound("No such policy.")
    return policy


def request_list(
    *,
    status: str | None = None,
    mission_id: uuid.UUID | None = None,
    mode: str | None = None,
    decidable_by: Decider | None = None,
) -> ApprovalRequestQuerySet:
    queryset = ApprovalRequest.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    if mission_id is not None:
        queryset = queryset.filter(mission_id=mission_id)
    if mode:
        queryset = queryset.filter(mode=mode)
    if decidable_by is not None:
        queryset = queryset.decidable_by(role=decidable_by.role, user_id=decidable_by.user_id)
    return queryset.order_by("-created_at", "-id")


def request_get(*, request_id: uuid.UUID | str, with_events: bool = True) -> ApprovalRequest:
    queryset = ApprovalRequest.objects.all()
    if with_events:
        queryset = queryset.prefetch_related(
            Prefetch("events", queryset=ApprovalEvent.objects.order_by("created_at", "id"))
        )
    request = queryset.filter(pk=_uuid(request_id)).first()
    if request is None:
        raise NotFound("No such approval request.")
    return request


@dataclass
class Inbox:
    mine: list[ApprovalRequest]  # pending, this reviewer may decide
    others: list[ApprovalRequest]  # pending, someone else decides (or SoD keeps this reviewer out)
    decided: list[ApprovalRequest]  # most recent resolved, with their history


def inbox(*, decider: Decider | None) -> Inbox:
    """Three queries whatever the number of requests (events are prefetched in one)."""
    events = Prefetch("events", queryset=ApprovalEvent.objects.order_by("created_at", "id"))
    pending = list(ApprovalRequest.objects.pending().prefetch_related(events).order_by("deadline", "created_at"))
    mine: list[ApprovalRequest] = []
    others: list[ApprovalRequest] = []
    for request in pending:
        if decider is not None and request.may_be_decided_by(role=decider.role, user_id=decider.user_id):
            mine.append(request)
        else:
            others.append(request)
    decided = list(
        ApprovalRequest.objects.exclude(status=RequestStatus.PENDING)
        .prefetch_related(events)
        .order_by("-decided_at", "-created_at")[:DECIDED_IN_INBOX]
    )
    return Inbox(mine=mine, others=others, decided=decided)


def _uuid(value: Any) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
