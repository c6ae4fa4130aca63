"""Exporting signed checkpoints outside the database, and reading them back for verification.

Each journal has one JSON Lines file, ``<JOURNAL_CHECKPOINT_DIR>/<schema>-<journal_id>.jsonl``;
every checkpoint is appended to it (and fsynced) and logged on the ``apps.audit.checkpoints``
logger, so an operator can keep it in a log store too. Someone who deletes the newest
entries, the head and the checkpoint rows from the database is still caught by these.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from . import chain

logger = logging.getLogger("apps.audit.checkpoints")


@dataclass(frozen=True)
class CheckpointRecord:
    schema: str
    journal_id: str
    seq: int
    hash: str
    created_at: str  # ISO 8601, exactly as signed
    reason: str
    signature: str
    source: str = "file"

    def message(self) -> bytes:
        return chain.checkpoint_message(
            schema_name=self.schema,
            journal_id=self.journal_id,
            seq=self.seq,
            hash=self.hash,
            created_at=self.created_at,
            reason=self.reason,
        )

    def signature_valid(self) -> bool:
        return chain.signature_valid(self.message(), self.signature)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "journal_id": self.journal_id,
            "seq": self.seq,
            "hash": self.hash,
            "created_at": self.created_at,
            "reason": self.reason,
            "signature": self.signature,
        }


def checkpoint_dir() -> Path:
    return Path(settings.JOURNAL_CHECKPOINT_DIR)


def checkpoint_file(schema: str, journal_id: object) -> Path:
    return checkpoint_dir() / f"{schema}-{journal_id or 'none'}.jsonl"


def export(record: CheckpointRecord) -> Path:
    """Append the checkpoint to its file (fsynced) and to the log. Raises OSError on failure."""
    path = checkpoint_file(record.schema, record.journal_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record.as_dict(), sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    logger.info("journal checkpoint %s", line.strip())
    return path


def read_exported(schema: str, journal_id: object) -> tuple[list[CheckpointRecord], list[str]]:
    """Checkpoints exported for this journal, and problems with lines that could not be read."""
    path = checkpoint_file(schema, journal_id)
    records: list[CheckpointRecord] = []
    problems: list[str] = []
    if not path.exists():
        return records, problems
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                records.append(
                    CheckpointRecord(
                        schema=str(data["schema"]),
                        journal_id=str(data["journal_id"]),
                        seq=int(data["seq"]),
                        hash=str(data["hash"]),
                        created_at=str(data["created_at"]),
                        reason=str(data["reason"]),
                        signature=str(data["signature"]),
                        source=f"{path.name}:{number}",
                    )
                )
            except (ValueError, KeyError, TypeError):
                problems.append(f"{path.name}:{number}: unreadable checkpoint line")
    return records, problems
