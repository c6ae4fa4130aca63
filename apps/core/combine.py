"""Calls of one process that arrive together are run together (a leader/follower combiner).

The first thread to call ``Combiner.run`` for a key runs its own item alone, the usual way.
Threads that call for the same key while it runs wait; when it is done, the first of them
becomes the next leader and runs every item that waited, in one go, and each waiting thread
gets its own item's outcome. Under load the batches grow by themselves, and a thread never
waits for more than the batch in flight and its own. A lone caller pays one lock.

The combiner knows nothing of databases: ``alone`` and ``together`` do the work.
``together`` gets the items (the leader's first) and returns one outcome per item, in order:
a value, or an exception for that item alone. If it raises, every item of the batch gets
that exception.

Only combine work that holds nothing another waiting thread could need: a caller waiting
here must not be inside a database transaction, or a leader could wait for its locks.

A child process forked while a batch was in flight starts with every combiner empty (the
threads that were waiting do not exist in it).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

I = TypeVar("I")  # noqa: E741  (the item type)
R = TypeVar("R")


class _Unset:
    pass


_UNSET = _Unset()


class _Call(Generic[I, R]):
    __slots__ = ("batch", "item", "outcome", "ready")

    def __init__(self, item: I) -> None:
        self.item = item
        # Held from the start; released once, when this call's outcome is in or its thread is
        # to lead (a bare lock: an Event's Python-level condition costs more than the wait).
        self.ready = threading.Lock()
        self.ready.acquire()
        self.outcome: R | BaseException | _Unset = _UNSET
        self.batch: list[_Call[I, R]] | None = None  # set when this call's thread is to lead

    def result(self) -> R:
        outcome = self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert not isinstance(outcome, _Unset), "a combined call finished without an outcome"
        return outcome


@dataclass
class CombinerStats:
    calls: int = 0
    batches: int = 0
    largest: int = 0
    combined_calls: int = 0  # calls that ran in a batch of two or more

    def as_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "batches": self.batches,
            "largest_batch": self.largest,
            "combined_calls": self.combined_calls,
            "mean_batch": round(self.calls / self.batches, 2) if self.batches else 0.0,
        }


@dataclass(eq=False)  # compared (and hashed) by identity
class Combiner(Generic[I, R]):
    """See the module's docstring. ``max_batch`` bounds one batch; the rest wait for the next."""

    max_batch: int = 64
    stats: CombinerStats = field(default_factory=CombinerStats)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiting: dict[Hashable, list[_Call[I, R]]] = field(default_factory=dict, repr=False)
    _busy: set[Hashable] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        _combiners.add(self)

    def reset(self) -> None:
        """Forget every call in flight (for a forked child: their threads are not in it)."""
        self._lock = threading.Lock()
        self._waiting = {}
        self._busy = set()

    def run(
        self,
        key: Hashable,
        item: I,
        alone: Callable[[], R],
        together: Callable[[Sequence[I]], Sequence[R | BaseException]],
    ) -> R:
        """``item``'s outcome: from ``alone()`` if nothing else for ``key`` is in flight, else
        from a later ``together(items)`` that includes it. ``together`` is the same for every
        call of a key (the leader's is used)."""
        call: _Call[I, R] = _Call(item)
        with self._lock:
            if key in self._busy:
                self._waiting.setdefault(key, []).append(call)
                batch = None
            else:
                self._busy.add(key)
                batch = [call]
        if batch is None:
            call.ready.acquire()
            batch = call.batch
            if batch is None:  # another thread ran it
                return call.result()
        try:
            self._execute(batch, alone, together)
        finally:
            self._hand_over(key)
        return call.result()

    def _execute(
        self,
        batch: list[_Call[I, R]],
        alone: Callable[[], R],
        together: Callable[[Sequence[I]], Sequence[R | BaseException]],
    ) -> None:
        outcomes: Sequence[R | BaseException]
        try:
            if len(batch) == 1:
                outcomes = [alone()]
            else:
                outcomes = together([call.item for call in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"a combined run gave {len(outcomes)} outcomes for {len(batch)} calls")
        except BaseException as exc:  # every caller of the batch sees it
            outcomes = [exc] * len(batch)
        for call, outcome in zip(batch, outcomes, strict=True):
            call.outcome = outcome
        with self._lock:
            stats = self.stats
            stats.calls += len(batch)
            stats.batches += 1
            stats.largest = max(stats.largest, len(batch))
            if len(batch) > 1:
                stats.combined_calls += len(batch)
        for call in batch[1:]:
            call.ready.release()

    def _hand_over(self, key: Hashable) -> None:
        """Make the first waiting caller the next leader, with the calls waiting behind it."""
        with self._lock:
            waiting = self._waiting.pop(key, None)
            if not waiting:
                self._busy.discard(key)
                return
            batch, rest = waiting[: self.max_batch], waiting[self.max_batch :]
            if rest:
                self._waiting[key] = rest
        batch[0].batch = batch
        batch[0].ready.release()


_combiners: weakref.WeakSet[Combiner[Any, Any]] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for combiner in list(_combiners):
        combiner.reset()


os.register_at_fork(after_in_child=_reset_after_fork)
