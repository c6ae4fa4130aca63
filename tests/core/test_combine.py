"""The combiner: a lone call runs alone; calls that arrive while one runs are run together
by the next leader, each getting its own outcome."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import pytest

from apps.core.combine import Combiner


def _wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _queued(combiner: Combiner[int, int]) -> int:
    return sum(len(calls) for calls in combiner._waiting.values())


class Held:
    """Runs the calls of a combiner; the first ``alone`` call waits until released."""

    def __init__(self, combiner: Combiner[int, int]) -> None:
        self.combiner = combiner
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[int]] = []
        self.outcomes: dict[int, object] = {}

    def alone(self, item: int) -> int:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        return item * 10

    def together(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        return [ValueError(f"bad {item}") if item == 13 else item * 10 for item in items]

    def call(self, item: int, key: str = "k") -> None:
        try:
            self.outcomes[item] = self.combiner.run(key, item, lambda: self.alone(item), self.together)
        except BaseException as exc:
            self.outcomes[item] = exc

    def start(self, item: int, key: str = "k") -> threading.Thread:
        thread = threading.Thread(target=self.call, args=(item, key))
        thread.start()
        return thread

    def queue(self, *items: int) -> list[threading.Thread]:
        """Start a thread per item, each once the one before it waits (so they queue in order)."""
        threads = []
        for item in items:
            before = _queued(self.combiner)
            threads.append(self.start(item))
            _wait_until(lambda before=before: _queued(self.combiner) == before + 1)
        return threads


def test_a_lone_call_runs_alone() -> None:
    combiner: Combiner[int, int] = Combiner()
    assert combiner.run("k", 4, lambda: 40, lambda items: pytest.fail("nothing to combine")) == 40
    assert combiner.run("k", 5, lambda: 50, lambda items: pytest.fail("nothing to combine")) == 50
    assert combiner.stats.as_dict() == {
        "calls": 2, "batches": 2, "largest_batch": 1, "combined_calls": 0, "mean_batch": 1.0,
    }  # fmt: skip


def test_calls_arriving_during_one_run_together_and_each_gets_its_own_outcome() -> None:
    combiner: Combiner[int, int] = Combiner()
    held = Held(combiner)
    first = held.start(1)
    assert held.entered.wait(10)
    others = held.queue(2, 13, 4)
    held.release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert held.batches == [[2, 13, 4]]  # the three that waited, in arrival order, in one go
    assert held.outcomes[1] == 10 and held.outcomes[2] == 20 and held.outcomes[4] == 40
    assert isinstance(held.outcomes[13], ValueError)  # only that call failed
    assert combiner.stats.combined_calls == 3 and combiner.stats.batches == 2
    assert not combiner._busy and not combiner._waiting


def test_when_the_batch_fails_every_call_of_it_fails() -> None:
    combiner: Combiner[int, int] = Combiner()
    held = Held(combiner)

    def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("the database went away")

    held.together = broken  # type: ignore[method-assign]
    first = held.start(1)
    assert held.entered.wait(10)
    others = held.queue(2, 3)
    held.release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert held.outcomes[1] == 10
    assert all(isinstance(held.outcomes[item], RuntimeError) for item in (2, 3))
    assert not combiner._busy  # and the next call runs normally
    assert combiner.run("k", 7, lambda: 70, broken) == 70


def test_batches_are_bounded_and_keys_are_never_mixed() -> None:
    combiner: Combiner[int, int] = Combiner(max_batch=2)
    held = Held(combiner)
    first = held.start(1)
    assert held.entered.wait(10)
    others = held.queue(2, 3, 4)
    other_key = held.start(9, key="other")  # not busy: runs alone at once
    other_key.join(10)
    assert held.outcomes[9] == 90
    held.release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert held.batches == [[2, 3]]  # then 4, left over, leads a batch of its own: alone()
    assert [held.outcomes[item] for item in (1, 2, 3, 4)] == [10, 20, 30, 40]
    assert combiner.stats.largest == 2


def test_a_child_forked_during_a_batch_starts_with_the_combiner_empty() -> None:
    combiner: Combiner[int, int] = Combiner()
    held = Held(combiner)
    first = held.start(1)
    assert held.entered.wait(10)
    others = held.queue(2)
    pid = os.fork()
    if pid == 0:  # the child: the leader and the waiter are not here; a call must not wait for them
        ok = not combiner._busy and not combiner._waiting and combiner.run("k", 5, lambda: 50, held.together) == 50
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    held.release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert os.waitstatus_to_exitcode(status) == 0
    assert held.outcomes[1] == 10 and held.outcomes[2] == 20  # the parent's batch went on
