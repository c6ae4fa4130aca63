"""Pushing committed entries to live-tail subscribers through the Channels layer.

``publish`` is called from ``transaction.on_commit``. It only enqueues: a background thread
with its own event loop drains the queue and sends one group message per workspace per batch,
so a writer never waits on Redis. The push is best effort on purpose: the database is the
truth, and the tail consumer fills any gap (a lost push, a Redis restart) from the database
by sequence number.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from channels.layers import get_channel_layer

if TYPE_CHECKING:
    from .models import JournalEntry

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "journal.entries"
# Per workspace and batch, only the newest entries travel: a subscriber that sees a sequence
# number above the next one it expects reads the ones in between from the database. A burst
# then costs one message, not thousands of serialised entries in the writers' process.
_MAX_PUSHED = 10
_LINGER_S = 0.05


def group_name(schema_name: str) -> str:
    return f"journal.{schema_name}"


class Later:
    """Entries to push, built only if they are among the newest of their batch (most are not:
    see _MAX_PUSHED): ``build`` makes them, ``last_seq`` is the highest sequence number."""

    __slots__ = ("build", "last_seq")

    def __init__(self, last_seq: int, build: Callable[[], list[JournalEntry]]) -> None:
        self.last_seq = last_seq
        self.build = build


def _newest(items: list[list[JournalEntry] | Later]) -> list[JournalEntry]:
    """The _MAX_PUSHED newest entries of ``items``, building only the Later ones needed."""
    entries: list[JournalEntry] = []
    for item in sorted(items, key=lambda it: it.last_seq if isinstance(it, Later) else it[-1].seq, reverse=True):
        if len(entries) >= _MAX_PUSHED:
            break
        entries.extend(item.build() if isinstance(item, Later) else item)
    return sorted(entries, key=lambda entry: entry.seq)[-_MAX_PUSHED:]


class _Publisher:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, list[JournalEntry] | Later]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, schema_name: str, entries: list[JournalEntry] | Later) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="journal-live-publisher", daemon=True)
                    self._thread.start()
        with self._idle:
            self._pending += 1
        self._queue.put((schema_name, entries))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was sent (tests, benchmarks, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        while True:
            batch = [self._queue.get()]
            # Linger briefly: under a burst of appends one message carries many entries, and
            # the writers are not interrupted by a wake-up per commit.
            time.sleep(_LINGER_S)
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                loop.run_until_complete(self._send(batch))
            except Exception:
                logger.warning("journal live push failed; subscribers will catch up from the database", exc_info=True)
            finally:
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    async def _send(self, batch: list[tuple[str, list[JournalEntry] | Later]]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        by_schema: dict[str, list[list[JournalEntry] | Later]] = {}
        for schema_name, entries in batch:
            if entries:
                by_schema.setdefault(schema_name, []).append(entries)
        for schema_name, items in by_schema.items():
            # Built and serialised here, off the writer's thread; in sequence order (two writer
            # threads may have submitted out of order).
            newest = _newest(items)
            await layer.group_send(
                group_name(schema_name), {"type": MESSAGE_TYPE, "entries": [entry.as_dict() for entry in newest]}
            )


_publisher = _Publisher()


def publish(schema_name: str, entries: list[JournalEntry] | Later) -> None:
    _publisher.submit(schema_name, entries)


def flush(timeout: float = 5.0) -> bool:
    return _publisher.flush(timeout)
