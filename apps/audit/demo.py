"""Demo data: after the other apps seeded the demo workspace, sign and export a checkpoint,
so ``journal_verify`` has an outside anchor to check from the start."""

from __future__ import annotations

from typing import Any

from apps.tenants.models import Workspace

from .models import JournalCheckpoint
from .services import journal_checkpoint


def checkpoint_demo(workspace: Workspace, users: dict[str, Any]) -> None:
    journal_checkpoint(reason=JournalCheckpoint.Reason.ON_DEMAND, if_changed=True)
