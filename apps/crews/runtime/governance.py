"""The runtime's seams to the governance apps: the approvals gate, the vault, the scrubber.

Each seam is one function, so wiring (or changing) a governance app is a change here only.
A seam whose app is not installed yet degrades as the architecture allows (no approvals app:
allow; no vault: tools that need credentials fail); an installed app that errors fails
closed (GovernanceUnavailable), never open.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from ..tools import ToolSpec

logger = logging.getLogger(__name__)

GateAction = Literal["allow", "deny", "wait", "queue"]


def _optional_module(name: str) -> ModuleType | None:
    """The module, or None when it does not exist (yet); any other import error propagates."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return None
        raise


@dataclass(frozen=True)
class GateOutcome:
    action: GateAction
    reason: str = ""
    request_id: str = ""
    policy: str = ""


@dataclass(frozen=True)
class Decision:
    """A reviewer's (or a timeout's) answer to an approval request, as the runtime needs it.

    Its dict form is what the worker resumes the graph with (``Command(resume=...)``) and what
    the checkpoint keeps; it matches ``apps.approvals.gate.Outcome.as_resume()``.
    """

    approved: bool
    comment: str = ""  # for the model: who decided, and the reviewer's comment
    arguments: dict[str, Any] | None = None  # edited arguments, when a reviewer changed them
    decided_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "approved" if self.approved else "denied",
            "message": self.comment,
            "arguments": self.arguments,
            "edited": self.arguments is not None,
            "decided_by": self.decided_by,
        }

    @classmethod
    def from_value(cls, value: Any) -> Decision:
        if isinstance(value, Decision):
            return value
        if isinstance(value, dict):
            edited = bool(value.get("edited"))
            arguments = value.get("arguments")
            return cls(
                approved=value.get("status") == "approved",
                comment=str(value.get("message") or value.get("comment") or ""),
                arguments=arguments if edited and isinstance(arguments, dict) else None,
                decided_by=str(value.get("decided_by") or ""),
            )
        return cls(approved=False, comment="The decision could not be read; treated as a denial.")


@dataclass(frozen=True)
class GateCall:
    """Everything the gate may need about one tool call (approvals cannot import crews)."""

    mission_id: uuid.UUID
    crew_id: uuid.UUID
    agent_id: uuid.UUID
    tool_call_id: str
    tool: ToolSpec
    arguments: dict[str, Any]
    autonomy: str
    crew_name: str = ""
    agent_name: str = ""
    mission_goal: str = ""
    mission_cost_microusd: int = 0
    started_by_user_id: int | None = None
    reasoning: str = ""
    diff: Any = None
    estimated_cost_microusd: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def gate_tool_call(call: GateCall) -> GateOutcome:
    """Ask the approvals gate about one tool call. Idempotent per (mission, tool_call_id): the
    tool node runs again after an interrupt or a crash and gets the same answer."""
    gate = _optional_module("apps.approvals.gate")
    if gate is None:
        return GateOutcome("allow", reason="no approvals gate is installed")
    verdict = gate.gate(
        tool_name=call.tool.name,
        arguments=call.arguments,
        tool_call_id=call.tool_call_id,
        has_side_effects=call.tool.side_effects,
        estimated_cost_microusd=call.estimated_cost_microusd,
        crew_id=call.crew_id,
        agent_id=call.agent_id,
        mission_id=call.mission_id,
        autonomy_level=call.autonomy,
        started_by_user_id=call.started_by_user_id,
        reasoning=call.reasoning,
        diff=call.diff,
        crew_name=call.crew_name,
        agent_name=call.agent_name,
        mission_goal=call.mission_goal,
        mission_cost_microusd=call.mission_cost_microusd,
    )
    return GateOutcome(
        action=verdict.action,
        reason=verdict.reason or "",
        request_id=str(verdict.approval_request_id or ""),
        policy=verdict.policy_name or "",
    )


def approval_decision(request_id: str) -> Decision | None:
    """The decision on an approval request, or None while it is pending."""
    gate = _optional_module("apps.approvals.gate")
    if gate is None or not request_id:
        return None
    outcome = gate.request_outcome(request_id)
    if not outcome.is_final:
        return None
    return Decision.from_value(outcome.as_resume())


def mark_executed(*, request_id: str, ok: bool, detail: str = "") -> None:
    """Tell approvals an approved call ran (its inbox shows when, and whether it worked)."""
    gate = _optional_module("apps.approvals.gate")
    if gate is not None and request_id:
        gate.mark_executed(request_id, ok=ok, detail=detail[:500])


def withdraw_approvals(*, mission_id: uuid.UUID) -> None:
    """The mission ended: its pending requests need no reviewer any more."""
    gate = _optional_module("apps.approvals.gate")
    if gate is None:
        return
    try:
        gate.cancel_mission_requests(mission_id, reason="the mission ended")
    except Exception:
        logger.exception("withdrawing approval requests of mission %s failed", mission_id)


def sweep_timeouts() -> float | None:
    """Apply approval timeouts everywhere; seconds until the next deadline, if any."""
    gate = _optional_module("apps.approvals.gate")
    if gate is None:
        return None
    report = gate.sweep_timeouts()
    deadline = getattr(report, "next_deadline", None)
    if deadline is None:
        return None
    from django.utils import timezone

    return max(0.0, (deadline - timezone.now()).total_seconds())


# --- the vault -----------------------------------------------------------------------------


class CredentialUnavailable(Exception):
    """A credential the tool needs was not handed out; the message says why (for the model)."""


class CredentialPending(CredentialUnavailable):
    """A credential waits for a person (an L4 secret): ``reference`` is the approval request."""

    def __init__(self, message: str, *, reference: str):
        super().__init__(message)
        self.reference = reference


class CallSecrets:
    """Credentials for one tool call and the scrubber for what it produces."""

    def __init__(self, *, crew_id: uuid.UUID, agent_id: uuid.UUID | None, mission_id: uuid.UUID, tool_name: str):
        keeper = _optional_module("apps.vault.keeper")
        self._keeper = keeper
        self._secrets = (
            keeper.CallSecrets(crew_id=crew_id, agent_id=agent_id, mission_id=mission_id, tool_name=tool_name)
            if keeper is not None
            else None
        )

    def fetch(self, names: Iterable[str], *, intent: str) -> dict[str, str]:
        names = list(names)
        if not names:
            return {}
        if self._secrets is None or self._keeper is None:
            raise CredentialUnavailable("Credentials are unavailable: no vault is installed.")
        for name in names:
            try:
                self._secrets.request(name, intent=intent)
            except self._keeper.KeeperPendingApproval as exc:
                raise CredentialPending(
                    f"The credential {name!r} waits for a person's approval ({exc.reference}).",
                    reference=exc.reference,
                ) from None
            except self._keeper.KeeperDenied as exc:
                raise CredentialUnavailable(f"The credential {name!r} was refused: {exc.reason}") from None
        return dict(self._secrets.values())

    def scrub(self, value: Any) -> Any:
        if self._secrets is None:
            return value
        return self._secrets.scrub(value)
