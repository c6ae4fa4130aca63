"""The Keeper: the one way a tool call gets a credential.

The runtime calls ``keeper_request`` at tool execution time, with the workspace's schema
active, for each credential the tool declares::

    credential = keeper_request(
        secret_name="stripe", crew_id=crew.id, agent_id=agent.id, mission_id=mission.id,
        intent="Refund invoice 1042 for the customer in ticket 88", tool_name="stripe_refund",
    )
    run_tool(..., credentials={"stripe": credential.value})
    output = scrub(output, secrets=[credential.value, ...])   # or CallSecrets below

Rules, in order; every failure path denies and is journaled:
1. the secret exists and a live grant covers this crew or agent (and mission);
2. the tier: L1 needs a stated intent; L2/L3 go to the judge (``judges.py``); L4 is never
   automatic: it becomes an approval request through the escalation handler, and without
   a handler it is denied;
3. the value decrypts (key version still allowed, ciphertext authentic);
4. the decision is written to the access history and the journal in one transaction; only
   after that commits does the caller get the credential. No journal, no credential.

Call it with the workspace's schema active and outside a transaction of yours: the judge's
model call goes through the LLM gateway, whose budget reservation must commit before the
provider is called, and inside a transaction the decision would only be journaled when (and
if) that transaction commits.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from django.db import connection, transaction
from django.views.decorators.debug import sensitive_variables
from django_tenants.utils import get_public_schema_name

from apps.audit.services import journal_append
from apps.core.context import current_request_id
from apps.core.errors import QuarterdeckError

from . import escalation, judges
from .crypto import DecryptionFailed
from .models import AccessRecord, Decision, Grant, Secret, Tier
from .scrub import Scrubber
from .selectors import best_grant, dead_grant_reason, live_grants_with_secrets, reveal_all, visible_secret_values

logger = logging.getLogger(__name__)

MAX_INTENT_CHARS = 2000
MIN_L1_WORDS = 2
_WORD = re.compile(r"\w{2,}")


class KeeperDenied(QuarterdeckError):
    """The credential is not handed out. ``reason_code`` says which rule refused it."""

    code = "secret_denied"
    status_code = 403
    default_message = "The credential was not handed out."

    def __init__(self, reason: str, *, reason_code: str, secret_name: str, access_id: int | None = None):
        super().__init__(
            f"{secret_name}: {reason}",
            details={"reason_code": reason_code, "secret_name": secret_name, "access_id": access_id},
        )
        self.reason = reason
        self.reason_code = reason_code
        self.secret_name = secret_name
        self.access_id = access_id


class KeeperPendingApproval(QuarterdeckError):
    """An L4 request is waiting for a human. Ask again (same arguments) once it is decided."""

    code = "secret_pending_approval"
    status_code = 409
    default_message = "A human must approve this use of the credential."

    def __init__(self, *, secret_name: str, reference: str, access_id: int | None, reason: str = ""):
        super().__init__(
            f"{secret_name}: waiting for approval {reference}",
            details={"secret_name": secret_name, "approval_reference": reference, "access_id": access_id},
        )
        self.secret_name = secret_name
        self.reference = reference
        self.access_id = access_id
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Credential:
    """A decrypted secret for one tool call. It prints without its value and refuses to be
    pickled, so it cannot slip into a log line, a prompt or a checkpoint by accident."""

    secret_name: str
    kind: str
    tier: str
    access_id: int
    lease_expires_at: datetime | None
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"<Credential {self.secret_name} ({self.tier}), value hidden>"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("Credentials are not serialisable; ask the Keeper again where they are needed.")


@dataclass
class _Decision:
    """What the Keeper decided, before it is written down."""

    decision: str
    reason_code: str
    reason: str
    secret: Secret | None = None
    grant: Grant | None = None
    judge: str = ""
    approval_reference: str = ""


def _uuid_or_none(value: Any, name: str) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise _Deny("invalid_request", f"{name} is not a UUID.") from None


@sensitive_variables()
def keeper_request(
    *,
    secret_name: str,
    crew_id: uuid.UUID | str | None,
    agent_id: uuid.UUID | str | None,
    mission_id: uuid.UUID | str | None,
    intent: str,
    tool_name: str,
) -> Credential:
    """Decide one request for ``secret_name``; return the credential or raise
    ``KeeperDenied`` / ``KeeperPendingApproval``. See the module docstring for the rules."""
    started = time.perf_counter()
    crew = agent = mission = None
    schema = str(getattr(connection, "schema_name", get_public_schema_name()))
    intent = intent if isinstance(intent, str) else ""
    tool_name = (tool_name or "").strip()[:200]
    scrubber = Scrubber([])
    value: str | None = None

    try:
        crew = _uuid_or_none(crew_id, "crew_id")
        agent = _uuid_or_none(agent_id, "agent_id")
        mission = _uuid_or_none(mission_id, "mission_id")
        if schema == get_public_schema_name():
            raise _Deny("no_workspace", "No workspace is active; credentials live in a workspace.")
        # One query: every live grant of this crew/agent in this mission, with its secret.
        grants = live_grants_with_secrets(crew_id=crew, agent_id=agent, mission_id=mission)
        granted = [g for g in grants if g.secret.name == secret_name]
        secret = granted[0].secret if granted else Secret.objects.filter(name=secret_name).first()
        # Everything written about this request is scrubbed of every value the call could see,
        # including this one: an agent may paste a secret it was given earlier into an intent.
        visible = reveal_all({g.secret_id: g.secret for g in grants if g.secret.name != secret_name}.values())
        if secret is not None:
            try:
                value = secret.value.reveal()
                visible.append(value)
            except DecryptionFailed:
                value = None
        scrubber = Scrubber(visible)
        decision = _decide(
            secret=secret,
            grant=best_grant(granted),
            secret_name=secret_name,
            decrypted=value is not None,
            crew=crew,
            agent=agent,
            mission=mission,
            intent=scrubber.scrub(intent),
            tool_name=tool_name,
            schema=schema,
        )
    except _Deny as deny:
        decision = _Decision(Decision.DENIED, deny.reason_code, deny.reason, secret=deny.secret)
    except Exception as exc:  # a bug or an outage in any rule: deny, never hand out
        logger.exception("keeper: deciding %s failed", secret_name)
        decision = _Decision(
            Decision.DENIED, "keeper_error", f"The request could not be decided ({type(exc).__name__})."
        )

    call = _Call(
        secret_name=str(secret_name)[:100],
        crew=crew,
        agent=agent,
        mission=mission,
        tool_name=tool_name,
        intent=scrubber.scrub(intent)[:MAX_INTENT_CHARS],
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )

    if decision.decision == Decision.ALLOWED:
        assert decision.secret is not None and value is not None
        try:
            record = _record(decision, call)
        except Exception:
            logger.exception("keeper: journal unavailable; denying %s", secret_name)
            failed = _Decision(
                Decision.DENIED,
                "journal_unavailable",
                "The decision could not be journaled, so the credential is not handed out.",
                secret=decision.secret,
            )
            _deny(failed, call)
        return Credential(
            secret_name=decision.secret.name,
            kind=decision.secret.kind,
            tier=decision.secret.tier,
            access_id=record.pk,
            lease_expires_at=decision.grant.expires_at if decision.grant else None,
            value=value,
        )
    if decision.decision == Decision.PENDING:
        try:
            record = _record(decision, call)
        except Exception:
            logger.exception("keeper: journal unavailable; denying %s", secret_name)
            failed = _Decision(
                Decision.DENIED,
                "journal_unavailable",
                "The escalation could not be journaled, so the request is denied.",
                secret=decision.secret,
            )
            _deny(failed, call)
        raise KeeperPendingApproval(
            secret_name=call.secret_name,
            reference=decision.approval_reference,
            access_id=record.pk,
            reason=decision.reason,
        )
    _deny(decision, call)


@dataclass(frozen=True)
class _Call:
    """The request as it is written down (intent already scrubbed)."""

    secret_name: str
    crew: uuid.UUID | None
    agent: uuid.UUID | None
    mission: uuid.UUID | None
    tool_name: str
    intent: str
    elapsed_ms: float


class _Deny(Exception):
    def __init__(self, reason_code: str, reason: str, secret: Secret | None = None):
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason
        self.secret = secret


def _decide(
    *,
    secret: Secret | None,
    grant: Grant | None,
    secret_name: str,
    decrypted: bool,
    crew: uuid.UUID | None,
    agent: uuid.UUID | None,
    mission: uuid.UUID | None,
    intent: str,
    tool_name: str,
    schema: str,
) -> _Decision:
    if not tool_name:
        raise _Deny("invalid_request", "The tool making the request must be named.")
    if crew is None and agent is None:
        raise _Deny("invalid_request", "A crew or an agent must be named.")
    if secret is None:
        raise _Deny("no_such_secret", f"There is no secret called {secret_name!r} in this workspace.")
    if len(intent) > MAX_INTENT_CHARS:
        raise _Deny("intent_too_long", f"State the intent in at most {MAX_INTENT_CHARS} characters.", secret)

    if grant is None:
        code, reason = dead_grant_reason(secret=secret, crew_id=crew, agent_id=agent, mission_id=mission)
        raise _Deny(code, reason, secret)
    if not decrypted:
        raise _Deny(
            "undecryptable",
            "The stored value cannot be decrypted (retired key version or damaged ciphertext); re-enter it.",
            secret,
        )

    words = len(_WORD.findall(intent))
    if words < MIN_L1_WORDS:
        raise _Deny("intent_missing", "State what the credential is for (an intent of a few words).", secret)

    if secret.tier == Tier.L1:
        return _Decision(Decision.ALLOWED, "l1_intent_stated", "L1: intent stated.", secret=secret, grant=grant)

    if secret.tier in (Tier.L2, Tier.L3):
        request = judges.JudgeRequest(
            secret_name=secret.name,
            secret_kind=secret.kind,
            secret_description=secret.description,
            tier=secret.tier,
            tool_name=tool_name,
            intent=intent,
            crew_id=crew,
            agent_id=agent,
            mission_id=mission,
        )
        try:
            judge_name, judge = judges.get_judge()
        except judges.JudgeError as exc:
            raise _Deny(exc.reason_code, str(exc), secret) from None
        try:
            verdict = judge(request)
        except judges.JudgeError as exc:
            return _Decision(Decision.DENIED, exc.reason_code, str(exc), secret=secret, judge=judge_name)
        except Exception as exc:
            return _Decision(
                Decision.DENIED,
                "judge_unavailable",
                f"The judge failed ({type(exc).__name__}).",
                secret=secret,
                judge=judge_name,
            )
        if not isinstance(verdict, judges.Verdict):
            return _Decision(
                Decision.DENIED, "judge_unparseable", "The judge returned no verdict.", secret=secret, judge=judge_name
            )
        reason = str(verdict.reason)[:300]
        if verdict.allow:
            return _Decision(Decision.ALLOWED, "judge_allowed", reason, secret=secret, grant=grant, judge=judge_name)
        return _Decision(Decision.DENIED, "judge_denied", reason, secret=secret, judge=judge_name)

    if secret.tier == Tier.L4:
        handler = escalation.escalation_handler()
        if handler is None:
            raise _Deny("no_approval_path", "L4 needs a human approval and no approval handler is installed.", secret)
        try:
            outcome = handler(
                escalation.EscalationRequest(
                    workspace_schema=schema,
                    secret_id=secret.pk,
                    secret_name=secret.name,
                    secret_description=secret.description,
                    tier=secret.tier,
                    crew_id=crew,
                    agent_id=agent,
                    mission_id=mission,
                    tool_name=tool_name,
                    intent=intent,
                    request_id=current_request_id(),
                )
            )
        except Exception as exc:
            logger.exception("keeper: escalation handler failed for %s", secret.name)
            raise _Deny(
                "approval_unavailable", f"The approval request failed ({type(exc).__name__}).", secret
            ) from None
        status = getattr(outcome, "status", None)
        reference = str(getattr(outcome, "reference", ""))[:100]
        reason = str(getattr(outcome, "reason", ""))[:300]
        if status == "approved":
            return _Decision(
                Decision.ALLOWED,
                "human_approved",
                reason or "Approved by a human.",
                secret=secret,
                grant=grant,
                approval_reference=reference,
            )
        if status == "pending":
            return _Decision(
                Decision.PENDING,
                "approval_pending",
                reason or "Waiting for a human decision.",
                secret=secret,
                approval_reference=reference,
            )
        if status == "denied":
            return _Decision(
                Decision.DENIED,
                "human_denied",
                reason or "Denied by a human.",
                secret=secret,
                approval_reference=reference,
            )
        raise _Deny("approval_unavailable", "The approval handler gave no usable answer.", secret)

    raise _Deny("unknown_tier", f"Unknown tier {secret.tier!r}.", secret)


_KIND: dict[str, str] = {
    Decision.ALLOWED: "secret.accessed",
    Decision.DENIED: "secret.denied",
    Decision.PENDING: "secret.escalated",
}


def _record(decision: _Decision, call: _Call) -> AccessRecord:
    """The access-history row and its journal entry, in one transaction."""
    secret = decision.secret
    with transaction.atomic():
        record = AccessRecord.objects.create(
            secret_id=secret.pk if secret else None,
            secret_name=secret.name if secret else call.secret_name,
            tier=secret.tier if secret else "",
            crew_id=call.crew,
            agent_id=call.agent,
            mission_id=call.mission,
            tool_name=call.tool_name,
            intent=call.intent,
            decision=decision.decision,
            reason_code=decision.reason_code,
            reason=decision.reason[:500],
            judge=decision.judge,
            grant_id=decision.grant.pk if decision.grant else None,
            approval_reference=decision.approval_reference,
            request_id=(current_request_id() or "")[:64],
            duration_ms=round(call.elapsed_ms, 3),
        )
        journal_append(
            kind=_KIND[decision.decision],
            payload={
                "secret_name": record.secret_name,
                "secret_id": str(secret.pk) if secret else None,
                "tier": record.tier or None,
                "tool_name": call.tool_name,
                "intent": call.intent,
                "reason_code": decision.reason_code,
                "reason": record.reason,
                "access_id": record.pk,
                "grant_id": str(decision.grant.pk) if decision.grant else None,
                "judge": decision.judge or None,
                "approval_reference": decision.approval_reference or None,
                "lease_expires_at": (
                    decision.grant.expires_at.isoformat() if decision.grant and decision.grant.expires_at else None
                ),
            },
            crew_id=call.crew,
            agent_id=call.agent,
            mission_id=call.mission,
        )
    return record


def _deny(decision: _Decision, call: _Call) -> NoReturn:
    access_id: int | None = None
    try:
        access_id = _record(decision, call).pk
    except Exception:
        # Still a denial; it could not be written down (the journal is down, or the caller's
        # transaction is broken). Logged without the intent, which is the agent's text.
        logger.exception("keeper: could not journal the denial of %s (%s)", call.secret_name, decision.reason_code)
    raise KeeperDenied(
        decision.reason, reason_code=decision.reason_code, secret_name=call.secret_name, access_id=access_id
    )


# --- one tool call's secrets -------------------------------------------------------------------


class CallSecrets:
    """Credentials for one tool call, and the scrubber for everything that call produces.

    ``scrub`` removes every secret the crew/agent holds a live grant to in this mission (what
    the call could see), plus anything added with ``add`` (an OAuth access token)::

        secrets = CallSecrets(crew_id=..., agent_id=..., mission_id=..., tool_name="send_email")
        smtp = secrets.request("smtp", intent="Send the weekly report to the ops list")
        output = secrets.scrub(run_tool(...))
    """

    def __init__(
        self,
        *,
        crew_id: uuid.UUID | str | None,
        agent_id: uuid.UUID | str | None,
        mission_id: uuid.UUID | str | None,
        tool_name: str,
    ):
        self.crew_id = crew_id
        self.agent_id = agent_id
        self.mission_id = mission_id
        self.tool_name = tool_name
        self._extra: list[str] = []
        self._credentials: dict[str, Credential] = {}

    def request(self, secret_name: str, *, intent: str) -> Credential:
        credential = keeper_request(
            secret_name=secret_name,
            crew_id=self.crew_id,
            agent_id=self.agent_id,
            mission_id=self.mission_id,
            intent=intent,
            tool_name=self.tool_name,
        )
        self._credentials[secret_name] = credential
        return credential

    def add(self, values: Iterable[str]) -> None:
        self._extra.extend(v for v in values if v)

    def values(self) -> dict[str, str]:
        return {name: c.value for name, c in self._credentials.items()}

    @sensitive_variables()
    def scrubber(self) -> Scrubber:
        visible = visible_secret_values(
            crew_id=_uuid_or_none(self.crew_id, "crew_id"),
            agent_id=_uuid_or_none(self.agent_id, "agent_id"),
            mission_id=_uuid_or_none(self.mission_id, "mission_id"),
        )
        return Scrubber([*visible, *(c.value for c in self._credentials.values()), *self._extra])

    def scrub(self, value: Any) -> Any:
        return self.scrubber().scrub(value)

    def __repr__(self) -> str:
        return f"<CallSecrets {self.tool_name}: {sorted(self._credentials)}>"
