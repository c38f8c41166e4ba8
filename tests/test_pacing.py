"""The per-region pace of AWS calls: a token bucket that halves on throttling and creeps back."""

from __future__ import annotations

import pytest

from backendauth_operator.aws.clients import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_calls_are_spaced_at_the_rate() -> None:
    clock = Clock()
    pace = Pacer(4.0, clock)
    waits = [pace.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_time_that_passed_is_not_saved_up_for_a_burst() -> None:
    clock = Clock()
    pace = Pacer(2.0, clock)
    pace.reserve()
    clock.now += 60  # idle for a minute
    assert [pace.reserve() for _ in range(3)] == pytest.approx([0.0, 0.5, 1.0])


def test_throttling_halves_the_rate_down_to_a_floor() -> None:
    pace = Pacer(8.0, Clock())
    pace.throttled()
    assert pace.rate == 4.0
    for _ in range(20):
        pace.throttled()
    assert pace.rate == Pacer.MIN_RPS


def test_successes_creep_back_up_to_the_ceiling_and_no_further() -> None:
    pace = Pacer(10.0, Clock())
    pace.throttled()
    pace.succeeded()
    assert pace.rate == 6.0
    for _ in range(10):
        pace.succeeded()
    assert pace.rate == 10.0


def test_a_throttled_answer_pushes_the_next_slot_out() -> None:
    clock = Clock()
    pace = Pacer(10.0, clock)
    assert pace.reserve() == 0.0
    pace.throttled()  # 5 per second now
    assert pace.reserve() == pytest.approx(0.2)
