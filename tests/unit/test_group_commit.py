"""Group commit: concurrent callers share one unit of work, each gets its outcome."""

from __future__ import annotations

import threading
import time

import pytest

from federation.intake.group_commit import GroupCommit


def test_a_lone_caller_runs_its_own_items() -> None:
    """Nobody else waiting, expect the caller's items run as they are."""
    seen: list[list[int]] = []
    GroupCommit(seen.append).run([1, 2])
    assert seen == [[1, 2]]


def test_callers_arriving_during_a_run_share_the_next_one() -> None:
    """Ten callers arrive while a slow group runs, expect them served together
    in one later group (not ten), every item exactly once, nothing lost."""
    groups: list[list[int]] = []
    started = threading.Event()

    def work(items: list[int]) -> None:
        groups.append(items)
        started.set()
        time.sleep(0.2)

    committer = GroupCommit(work)
    first = threading.Thread(target=committer.run, args=([0],))
    first.start()
    assert started.wait(5)
    callers = [threading.Thread(target=committer.run, args=([n],)) for n in range(1, 11)]
    for caller in callers:
        caller.start()
    time.sleep(0.05)  # all ten are queued while group [0] runs
    for thread in (first, *callers):
        thread.join(10)
        assert not thread.is_alive()
    assert groups[0] == [0]
    assert sorted(n for g in groups[1:] for n in g) == list(range(1, 11))
    assert len(groups) <= 3


def test_the_item_cap_splits_groups_but_never_a_request() -> None:
    """Requests of 3 items with a cap of 4, expect one request per group, whole."""
    groups: list[list[int]] = []
    gate = threading.Event()

    def work(items: list[int]) -> None:
        groups.append(items)
        gate.wait(5)

    committer = GroupCommit(work, max_items=4)
    threads = [threading.Thread(target=committer.run, args=([n] * 3,)) for n in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    gate.set()
    for thread in threads:
        thread.join(10)
    # Two requests of 3 would exceed the cap of 4: each group holds one whole request.
    assert sorted(groups) == [[n] * 3 for n in range(4)]


def test_every_member_of_a_failed_group_gets_the_error() -> None:
    """A group fails, expect each of its callers to see the error (none told
    its items were stored), and the committer to keep serving."""
    gate = threading.Event()
    calls = 0

    def work(items: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            gate.wait(5)
            return
        raise RuntimeError("disk full")

    committer = GroupCommit(work)
    errors: list[BaseException] = []

    def call(n: int) -> None:
        try:
            committer.run([n])
        except RuntimeError as exc:
            errors.append(exc)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    time.sleep(0.05)
    others = [threading.Thread(target=call, args=(n,)) for n in (1, 2, 3)]
    for thread in others:
        thread.start()
    time.sleep(0.05)
    gate.set()
    for thread in (first, *others):
        thread.join(10)
    assert len(errors) == 3
    with pytest.raises(RuntimeError):
        committer.run([9])  # the committer keeps working after a failure
