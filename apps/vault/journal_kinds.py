"""Journal entry kinds written by the vault. No payload ever holds a secret value."""

from __future__ import annotations

from apps.audit.catalog import EntryKind, Severity, register

NONE = type(None)
OPT_STR = (str, NONE)

_DECISION_REQUIRED = {
    "secret_name": str,
    "tool_name": str,
    "intent": str,
    "reason_code": str,
    "reason": str,
    "access_id": int,
}
_DECISION_OPTIONAL = {
    "secret_id": OPT_STR,
    "tier": OPT_STR,
    "grant_id": OPT_STR,
    "judge": OPT_STR,
    "approval_reference": OPT_STR,
    "lease_expires_at": OPT_STR,
}

VAULT_KINDS = (
    EntryKind(
        "secret.created",
        Severity.NOTICE,
        required={"secret_id": str, "name": str, "kind": str, "tier": str, "key_version": int},
        description="A secret was stored (encrypted with key_version).",
    ),
    EntryKind(
        "secret.updated",
        Severity.NOTICE,
        required={"secret_id": str, "name": str, "changed": list, "value_changed": bool},
        optional={"key_version": (int, NONE)},
        description="A secret's metadata or value changed; the value itself is never journaled.",
    ),
    EntryKind(
        "secret.deleted",
        Severity.WARNING,
        required={"secret_id": str, "name": str, "grants_removed": int},
    ),
    EntryKind(
        "secret.granted",
        Severity.NOTICE,
        required={"grant_id": str, "secret_id": str, "secret_name": str, "subject_type": str, "subject_id": str},
        optional={"mission_id": OPT_STR, "expires_at": OPT_STR, "note": str},
    ),
    EntryKind(
        "secret.revoked",
        Severity.NOTICE,
        required={"grant_id": str, "secret_id": str, "secret_name": str, "subject_type": str, "subject_id": str},
        optional={"reason": str},
    ),
    EntryKind(
        "secret.accessed",
        Severity.NOTICE,
        required=_DECISION_REQUIRED,
        optional=_DECISION_OPTIONAL,
        description="The Keeper handed a credential to a tool call.",
    ),
    EntryKind(
        "secret.denied",
        Severity.WARNING,
        required=_DECISION_REQUIRED,
        optional=_DECISION_OPTIONAL,
        description="The Keeper refused a credential; reason_code says which rule.",
    ),
    EntryKind(
        "secret.escalated",
        Severity.NOTICE,
        required=_DECISION_REQUIRED,
        optional=_DECISION_OPTIONAL,
        description="An L4 request became an approval request for a human; nothing was handed out yet.",
    ),
    EntryKind(
        "oauth.connected",
        Severity.NOTICE,
        required={"connection_id": str, "provider": str},
        optional={"expires_at": OPT_STR, "changed": list},
        description="An OAuth connection was created or given new tokens (it is healthy again).",
    ),
    EntryKind(
        "oauth.refreshed",
        Severity.INFO,
        required={"connection_id": str, "provider": str, "refresh_rotated": bool},
        optional={"expires_at": OPT_STR, "attempts": int},
    ),
    EntryKind(
        "oauth.failed",
        Severity.WARNING,
        required={"connection_id": str, "provider": str, "failure_class": str, "error": str},
        optional={"status_code": (int, NONE), "attempts": int, "marked_broken": bool},
        description="A token refresh failed: permanent (connection marked broken) or transient (retried).",
    ),
    EntryKind(
        "vault.rotated",
        Severity.NOTICE,
        required={"model": str, "field": str, "rows": int, "to_version": int, "from_versions": dict},
        description="A batch of encrypted values was re-encrypted under the current key.",
    ),
)


def register_all() -> None:
    register(*VAULT_KINDS)
