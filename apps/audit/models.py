"""The journal lives in each workspace's schema.

``JournalEntry`` rows are append-only in the database itself: triggers (migration 0002)
reject UPDATE, DELETE and TRUNCATE; the one exception is DELETE inside a compaction, which
sets the transaction-local ``quarterdeck.journal_compaction`` flag. ``JournalHead`` is the
single row that serialises writers and hands out the gapless sequence.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q

from .catalog import Severity

SEARCH_CONFIG = "simple"


class PayloadSearchVector(models.Func):
    """``jsonb_to_tsvector('simple', payload, '["string","numeric"]')``: the full-text document of
    an entry. Queries must use this same expression so the GIN index answers them."""

    template = "jsonb_to_tsvector('simple'::regconfig, %(expressions)s, '[\"string\", \"numeric\"]'::jsonb)"
    output_field = SearchVectorField()

    def __init__(self, **extra: Any) -> None:
        super().__init__(models.F("payload"), **extra)


class JournalEntry(models.Model):
    seq = models.BigIntegerField(primary_key=True, help_text="Gapless per workspace, assigned at write time.")
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    actor_kind = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=200)
    crew_id = models.UUIDField(null=True, blank=True)
    mission_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True)
    request_id = models.CharField(max_length=64, null=True, blank=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "journal entry"
        verbose_name_plural = "journal entries"
        indexes = [
            models.Index(fields=["kind", "seq"], name="audit_je_kind_seq"),
            # Entries arrive in time order, so a BRIN index answers time ranges at almost no
            # cost per insert (a B-tree here costs every append).
            BrinIndex(fields=["created_at"], name="audit_je_created_brin", autosummarize=True),
            models.Index(fields=["actor_kind", "actor_id", "seq"], name="audit_je_actor_seq"),
            models.Index(
                fields=["mission_id", "seq"], name="audit_je_mission_seq", condition=Q(mission_id__isnull=False)
            ),
            models.Index(fields=["crew_id", "seq"], name="audit_je_crew_seq", condition=Q(crew_id__isnull=False)),
            models.Index(fields=["agent_id", "seq"], name="audit_je_agent_seq", condition=Q(agent_id__isnull=False)),
            GinIndex(PayloadSearchVector(), name="audit_je_payload_fts"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"

    @property
    def actor(self) -> dict[str, str]:
        return {"kind": self.actor_kind, "id": self.actor_id, "label": self.actor_label}

    def as_dict(self) -> dict[str, Any]:
        """The one wire format of an entry (API, export, live tail)."""
        return {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "kind": self.kind,
            "severity": self.severity,
            "actor": self.actor,
            "crew_id": str(self.crew_id) if self.crew_id else None,
            "mission_id": str(self.mission_id) if self.mission_id else None,
            "agent_id": str(self.agent_id) if self.agent_id else None,
            "request_id": self.request_id,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class JournalHead(models.Model):
    """One row (id=1): the last sequence number and hash. Appending locks it FOR UPDATE, which
    makes the sequence gapless and the chain linear even with concurrent writers."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True, default="")
    # Random per journal, set at creation: it enters the genesis hash and names the exported
    # checkpoint file, so a recreated or copied journal never meets another one's checkpoints.
    journal_id = models.UUIDField(null=True, editable=False)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="audit_journalhead_single_row")]

    def __str__(self) -> str:
        return f"head #{self.last_seq}"


class JournalCheckpoint(models.Model):
    """A signed (sequence, hash, time) of the chain, also exported outside the database so that
    deleting the newest entries (and these rows) is still detected."""

    class Reason(models.TextChoices):
        PERIODIC = "periodic", "Periodic"
        ON_DEMAND = "on_demand", "On demand"
        COMPACTION = "compaction", "Compaction"

    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq", "-id"]
        indexes = [models.Index(fields=["seq"], name="audit_cp_seq")]

    def __str__(self) -> str:
        return f"checkpoint #{self.seq}"


class RetentionPolicy(models.Model):
    """How long entries of one severity are kept in full. ``keep_days`` null: forever.
    Compaction replaces expired entries by a summary; it never touches severities kept forever."""

    severity = models.CharField(max_length=16, choices=Severity.choices, unique=True)
    keep_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["severity"]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"{self.severity}: {self.keep_days or 'forever'}"


class MissionFork(models.Model):
    """A new mission that starts from the state of another mission at a journal sequence."""

    id = models.UUIDField(primary_key=True)
    source_mission_id = models.UUIDField()
    from_seq = models.BigIntegerField()
    new_mission_id = models.UUIDField(unique=True)
    entry_seq = models.BigIntegerField(help_text="Sequence of the fork.created entry.")
    created_at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["source_mission_id"], name="audit_fork_source")]

    def __str__(self) -> str:
        return f"fork of {self.source_mission_id} at #{self.from_seq}"
