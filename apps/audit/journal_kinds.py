"""Entry kinds the audit app writes itself, plus the changes humans make to a workspace
(settings, memberships, API keys), which the tenants services journal. Policy changes are
declared by the approvals app, mission kinds by crews; see ``apps.audit.replay`` for the
payload keys replay reads."""

from __future__ import annotations

from .catalog import EntryKind, Severity, register

NONE = type(None)

HUMAN_CHANGE_KINDS = (
    EntryKind(
        "workspace.updated",
        Severity.NOTICE,
        required={"changes": dict},
        description="Workspace settings changed; changes maps field -> {from, to}.",
    ),
    EntryKind(
        "membership.added",
        Severity.NOTICE,
        required={"user_id": int, "username": str, "role": str},
    ),
    EntryKind(
        "membership.role_changed",
        Severity.NOTICE,
        required={"user_id": int, "username": str, "from_role": str, "to_role": str},
    ),
    EntryKind(
        "membership.removed",
        Severity.NOTICE,
        required={"user_id": int, "username": str, "role": str},
    ),
    EntryKind(
        "api_key.created",
        Severity.NOTICE,
        required={"api_key_id": int, "name": str, "prefix": str, "role": str},
        optional={"expires_at": (str, NONE)},
    ),
    EntryKind(
        "api_key.revoked",
        Severity.NOTICE,
        required={"api_key_id": int, "name": str, "prefix": str},
    ),
)

JOURNAL_KINDS = (
    EntryKind(
        "journal.checkpoint",
        Severity.INFO,
        required={"checkpoint_seq": int, "checkpoint_hash": str, "reason": str, "signature": str},
        description="A signed checkpoint of the chain at checkpoint_seq was taken and exported.",
    ),
    EntryKind(
        "journal.compacted",
        Severity.NOTICE,
        required={
            "from_seq": int,
            "to_seq": int,
            "before": str,
            "severities": list,
            "removed_count": int,
            "removed_runs": list,
            "counts": dict,
        },
        description=(
            "Entries of a range were replaced by this summary. removed_runs lists "
            "[first_seq, last_seq, prev_hash_of_first, hash_of_last] for each run of removed "
            "entries, so verification can bridge the gap; counts maps kind -> removed entries."
        ),
    ),
    EntryKind(
        "journal.retention_changed",
        Severity.NOTICE,
        required={"severity": str, "keep_days": (int, NONE)},
        optional={"previous_keep_days": (int, NONE)},
    ),
    EntryKind(
        "fork.created",
        Severity.NOTICE,
        required={"fork_id": str, "source_mission_id": str, "from_seq": int, "new_mission_id": str},
        optional={"reason": str, "state": dict},
        description="A new mission starts from the source mission's state at from_seq.",
    ),
)


def register_all() -> None:
    register(*HUMAN_CHANGE_KINDS, *JOURNAL_KINDS)
