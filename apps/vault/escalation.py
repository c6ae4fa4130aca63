"""Where L4 requests go: a human decides, through whichever app registers a handler.

The vault does not import the approvals app (it sits beside it); approvals plugs in from its
``AppConfig.ready()``::

    from apps.vault.escalation import EscalationOutcome, register_escalation_handler

    def handle(request: EscalationRequest) -> EscalationOutcome:
        # find or open an approval request for exactly this (secret, crew, agent, mission, tool)
        ...
        return EscalationOutcome.pending(reference=str(approval.pk))
        # or .approved(reference=..., decided_by=...) once a human approved this request,
        # or .denied(reason=...)

    register_escalation_handler(handle)

The handler runs with the workspace's schema active, outside the Keeper's transaction. With
no handler registered, or when it raises, the Keeper denies: L4 fails closed.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

EscalationStatus = Literal["approved", "pending", "denied"]


@dataclass(frozen=True)
class EscalationRequest:
    workspace_schema: str
    secret_id: uuid.UUID
    secret_name: str
    secret_description: str
    tier: str
    crew_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    mission_id: uuid.UUID | None
    tool_name: str
    intent: str  # already scrubbed of every secret value the call could see
    request_id: str | None


@dataclass(frozen=True)
class EscalationOutcome:
    status: EscalationStatus
    reference: str = ""  # e.g. the approval request's id
    reason: str = ""
    decided_by: str = ""

    @classmethod
    def approved(cls, *, reference: str = "", decided_by: str = "", reason: str = "") -> EscalationOutcome:
        return cls("approved", reference=reference, decided_by=decided_by, reason=reason or "approved by a human")

    @classmethod
    def pending(cls, *, reference: str, reason: str = "") -> EscalationOutcome:
        return cls("pending", reference=reference, reason=reason or "waiting for a human decision")

    @classmethod
    def denied(cls, *, reason: str, reference: str = "", decided_by: str = "") -> EscalationOutcome:
        return cls("denied", reference=reference, reason=reason, decided_by=decided_by)


EscalationHandler = Callable[[EscalationRequest], EscalationOutcome]

_handler: EscalationHandler | None = None
_lock = threading.Lock()


def register_escalation_handler(handler: EscalationHandler) -> None:
    """Install the handler (one per process; registering again replaces it)."""
    global _handler
    with _lock:
        _handler = handler


def unregister_escalation_handler() -> None:
    global _handler
    with _lock:
        _handler = None


def escalation_handler() -> EscalationHandler | None:
    return _handler


@contextlib.contextmanager
def escalation_handler_installed(handler: EscalationHandler | None) -> Iterator[None]:
    """Swap the handler for a block (tests, the benchmark), restoring the previous one."""
    global _handler
    with _lock:
        previous, _handler = _handler, handler
    try:
        yield
    finally:
        with _lock:
            _handler = previous
