"""Live tail of the journal over WebSocket: ``/ws/w/<slug>/journal/?after=<seq>&mission=<uuid>``.

On connect the consumer joins the workspace's group first, then replays from the database
every entry after ``after``: nothing committed in between is missed. New entries arrive
through the Channels layer after commit; any gap in the sequence (a lost push, entries
pushed out of order by two processes) is filled from the database, and duplicates are
dropped, so the client sees each entry once, in sequence order. A client may also send
``{"type": "resume", "after": <seq>}`` to replay again from another point.

Messages sent: ``{"type": "entry", "entry": {...}}`` per entry, then
``{"type": "caught_up", "seq": <n>}`` after each replay from the database.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

from apps.tenants.ws import WorkspaceConsumer

from .live import group_name
from .models import JournalEntry, JournalHead

CLOSE_BAD_REQUEST = 4400
_CHUNK = 500


def _head_seq() -> int:
    return JournalHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0


def _entries_between(after: int, until: int, mission: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
    entries = JournalEntry.objects.filter(seq__gt=after, seq__lte=until).order_by("seq")
    if mission is not None:
        entries = entries.filter(mission_id=mission)
    return [entry.as_dict() for entry in entries[:limit]]


class JournalTailConsumer(WorkspaceConsumer):
    permission = "journal.read"

    mission: uuid.UUID | None = None
    high_water = 0  # every entry up to here was sent (or filtered out)
    group = ""

    async def connect(self) -> None:
        params = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            after = int(params.get("after", ["0"])[0])
            mission = params.get("mission", [""])[0]
            self.mission = uuid.UUID(mission) if mission else None
            if after < 0:
                raise ValueError(after)
        except ValueError:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.high_water = after
        self.group = group_name(self.workspace.schema_name)
        # Join before reading the database: an entry committed meanwhile is then either in
        # the replay or in the group (or both; the duplicate is dropped).
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._catch_up(until=None)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resume":
            after = content.get("after")
            if isinstance(after, int) and not isinstance(after, bool) and after >= 0:
                self.high_water = after
                await self._catch_up(until=None)
                return
        await self.send_json({"type": "error", "message": 'Send {"type": "resume", "after": <sequence number>}.'})

    async def journal_entries(self, event: dict[str, Any]) -> None:
        """A batch pushed after commit by ``apps.audit.live``."""
        for entry in event["entries"]:
            seq = entry["seq"]
            if seq <= self.high_water:
                continue
            if seq > self.high_water + 1:
                # Entries below a committed one are committed too (the head lock orders them).
                await self._catch_up(until=seq - 1, announce=False)
            if self.mission is None or entry.get("mission_id") == str(self.mission):
                await self.send_json({"type": "entry", "entry": entry})
            self.high_water = seq

    async def _catch_up(self, *, until: int | None, announce: bool = True) -> None:
        head = await self.in_workspace(_head_seq)
        limit = head if until is None else min(until, head)
        while self.high_water < limit:
            entries = await self.in_workspace(_entries_between, self.high_water, limit, self.mission, _CHUNK)
            for entry in entries:
                await self.send_json({"type": "entry", "entry": entry})
            if len(entries) < _CHUNK:
                self.high_water = limit
            else:
                self.high_water = entries[-1]["seq"]
        if until is not None and until > self.high_water:
            self.high_water = until
        if announce:
            await self.send_json({"type": "caught_up", "seq": self.high_water})
