"""The resync loop as arithmetic and against fake clocks: the round, the budget, the first round
after a start, priority over resyncs, and what the operator says when the round stretches.

No processes: the loop's :meth:`Resyncer.step` and :meth:`Resyncer.scan` are driven by hand."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from backendauth_operator import metrics
from backendauth_operator.runtime.workqueue import (
    Budget,
    Entry,
    Resyncer,
    Watched,
    due_at,
    first_due,
    round_seconds,
)


@pytest.mark.parametrize(
    ("objects", "period", "pace", "share", "expected"),
    [
        (0, 600, 5, 0.5, 600),  # nothing to read: the period
        (500, 600, 5, 0.5, 600),  # 0.83 reads/s of a budget of 2.5: fits
        (1500, 600, 5, 0.5, 600),  # exactly the budget
        (5000, 600, 5, 0.5, 2000),  # 8.3 reads/s wanted, 2.5 given: 5000 / 2.5
        (5000, 600, 5, 1.0, 1000),  # the whole pace
        (500, 60, 5, 0.5, 200),  # the test bed: 500 objects at a 60 s period
        (100, 10, 50, 0.1, 20),
    ],
)
def test_the_round_is_the_period_or_what_the_budget_needs(
    objects: int, period: float, pace: float, share: float, expected: float
) -> None:
    assert round_seconds(objects, period, pace, share) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("steps", "expected_tokens"),
    [
        ([("spend", 1)], 0.0),  # one token to start with, no more
        ([("spend", 1), ("wait", 0.2)], 0.5),  # 0.5 x 5/s x 0.2 s
        ([("spend", 1), ("wait", 100)], 1.0),  # time unused is not saved up
        ([("spend", 2), ("wait", 0.4)], 0.0),  # a resync that made two calls pays for two
    ],
)
def test_the_budget_fills_at_its_share_of_the_pace_and_holds_one_token(
    steps: list[tuple[str, float]], expected_tokens: float
) -> None:
    budget, now = Budget(0.5, 0.0), 0.0
    for what, amount in steps:
        if what == "spend":
            budget.spend(int(amount))
        else:
            now += amount
            budget.refill(5.0, now)
    assert budget.tokens == pytest.approx(expected_tokens)


def test_an_empty_budget_says_when_it_has_a_token_again() -> None:
    budget = Budget(0.5, 0.0)
    budget.spend(1)
    assert budget.ready_in(5.0, 0.0) == pytest.approx(0.4)  # 1 token at 2.5/s
    assert budget.ready_in(5.0, 0.4) == 0.0


def test_the_first_round_after_a_start_is_spread_over_one_period_a_tenth_of_it_late() -> None:
    period, since = 600.0, 1_000_000.0
    times = sorted(first_due(f"uid-{i}", since, period) for i in range(5000))
    assert since + 0.1 * period <= times[0] and times[-1] < since + 1.1 * period
    # Even: each tenth of the round holds about a tenth of the objects.
    per_tenth = [0] * 10
    for when in times:
        per_tenth[int((when - since - 0.1 * period) / (period / 10))] += 1
    assert all(400 <= n <= 600 for n in per_tenth), per_tenth


def test_an_object_read_by_this_process_is_due_one_period_later_give_or_take_a_fifth() -> None:
    entry = Entry("ns", "a", "uid-a", True, last_read=5_000.0)
    assert 5_000 + 0.8 * 600 <= due_at(entry, 0.0, 600) < 5_000 + 1.2 * 600


def settled(uid: str, region: str = "") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": uid, "uid": uid},
        "spec": {"region": region} if region else {},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "JobCompleted"}]},
    }


class FakePace:
    """A pacer whose slots the test reserves: ``reserved_until`` is when it is free again."""

    def __init__(self, clock: list[float], max_rps: float = 5.0) -> None:
        self.clock, self.max_rps, self.rate = clock, max_rps, max_rps
        self.reserved_until = 0.0

    def free_in(self) -> float:
        return max(0.0, self.reserved_until - self.clock[0])

    def take(self) -> None:
        slot = max(self.clock[0], self.reserved_until)
        self.reserved_until = slot + 1.0 / self.rate


def loop(
    objects: int, seconds: float, share: float = 0.5, priority_every: float | None = None
) -> dict[str, Any]:
    """Drive :meth:`Resyncer.step` over ``seconds`` of fake time with every object due; with
    ``priority_every``, other work takes a slot that often. Returns what happened."""
    clock = [0.0]
    pace = FakePace(clock)
    watched = Watched()
    for i in range(objects):
        watched.update(settled(f"uid-{i:05d}"))
    done: list[str] = []
    calls = [0]

    def resync(entry: Entry) -> None:
        pace.take()
        calls[0] += 1
        done.append(entry.uid)

    r = Resyncer(watched, 1.0, resync, share=share, pacer_of=lambda key: pace, calls=lambda: calls[0],
                 clock=lambda: 1_000.0 + clock[0], monotonic=lambda: clock[0])  # fmt: skip
    r.since = 0.0  # every object due at once: the worst case for a burst
    queue = watched.due(10_000.0, 1.0, since=0.0)
    next_priority = 0.0
    priority = 0
    while clock[0] < seconds and queue:
        if priority_every is not None and clock[0] >= next_priority:
            pace.take()  # work that goes before resyncs reserves the next slot
            priority += 1
            next_priority += priority_every
        wait = r.step("", queue)
        if wait > 0:
            step = wait if priority_every is None else min(wait, max(1e-3, next_priority - clock[0]))
            clock[0] += max(step, 1e-6)
    return {"resyncs": len(done), "calls": calls[0], "priority": priority}


def test_resyncs_that_want_more_than_the_budget_use_their_share_and_no_more() -> None:
    # 1,000 objects all due: they want far more than the budget of 0.5 x 5/s.
    out = loop(1000, 60.0)
    share = out["calls"] / (60.0 * 5.0)
    assert 0.45 <= share <= 0.5 + 1 / 300, out  # one token to start with


def test_a_whole_share_still_leaves_the_pace_to_work_that_waits() -> None:
    # With share 1 and other work asking for a slot every 0.5 s (2 of the 5 a second), resyncs
    # get the rest, never a slot the other work wanted.
    out = loop(1000, 60.0, share=1.0, priority_every=0.5)
    assert out["priority"] == 120
    assert out["calls"] + out["priority"] <= 60 * 5 + 2, out
    assert out["calls"] >= 0.9 * (60 * 5 - out["priority"]), out


def test_resyncs_wait_while_other_work_takes_every_slot() -> None:
    out = loop(1000, 30.0, priority_every=0.2)  # the whole pace of 5/s
    assert out["resyncs"] <= 1, out


def test_a_stretched_round_is_shown_and_said_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    pace = FakePace(clock)
    watched = Watched()
    for i in range(5000):
        watched.update(settled(f"uid-{i:05d}", region="eu-west-1"))
    r = Resyncer(watched, 600.0, lambda entry: None, share=0.5, pacer_of=lambda key: pace,
                 clock=lambda: 1_000.0 + clock[0], monotonic=lambda: clock[0])  # fmt: skip
    r.since = 1_000.0
    caplog.set_level(logging.INFO, logger="backendauth_operator.resync")
    r.scan(1_000.0)  # before the first round begins: the gauge shows it, nothing is said yet
    assert metrics.METRICS.resync_round._value.get() == pytest.approx(2000.0)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    for second in range(3):
        r.scan(1_060.0 + second)
    assert metrics.METRICS.resync_round._value.get() == pytest.approx(2000.0)
    assert metrics.METRICS.resync_period._value.get() == 600.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    (said,) = warnings
    for part in ("5000 settled BackendAuths", "eu-west-1", "every 600s", "0.5 of the pace of 5 calls/s",
                 "takes 2000s", "BACKENDAUTH_RESYNC_MAX_SHARE"):  # fmt: skip
        assert part in said, said
    for i in range(1000, 5000):  # most objects go: the round fits again
        watched.forget(f"uid-{i:05d}")
    r.scan(1_070.0)
    r.scan(1_071.0)
    assert metrics.METRICS.resync_round._value.get() == 600.0
    fits = [r.getMessage() for r in caplog.records if "fit their budget again" in r.getMessage()]
    assert len(fits) == 1 and len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_the_age_gauge_shows_the_oldest_read_or_the_start_for_one_not_read_yet() -> None:
    watched = Watched()
    watched.update(settled("read"))
    watched.update(settled("unread"))
    watched.observed("read", 1_500.0)
    r = Resyncer(watched, 600.0, lambda entry: None)
    r.since = 1_200.0
    r.scan(1_600.0)
    assert metrics.METRICS.observation_age._value.get() == pytest.approx(400.0)  # unread since 1,200
    watched.observed("unread", 1_550.0)
    r.scan(1_600.0)
    assert metrics.METRICS.observation_age._value.get() == pytest.approx(100.0)
