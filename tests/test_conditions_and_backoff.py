"""Unit tests of the pure helpers in ``core/decide.py``: conditions, job states, backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from backendauth_operator.core.bookkeeping import is_terminal
from backendauth_operator.core.decide import (
    State,
    backoff_delay,
    conditions_for,
    current_reason,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T2 = T0 + timedelta(minutes=10)

PHASES = {
    "ready": State("ready", "JobCompleted", "job j1 completed"),
    "reconciling": State("reconciling", "JobInProgress", "job j1 is RUNNING"),
    "stalled": State("stalled", "InvalidSpec", "spec.resourceConfig.service: bad"),
}
PHASE_CONDITION = {"ready": "Ready", "reconciling": "Reconciling", "stalled": "Stalled"}


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


# ---- conditions_for ------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_conditions_exactly_one_of_ready_reconciling_stalled_is_true(phase: str) -> None:
    conditions = conditions_for(PHASES[phase], 3, now=T0)
    assert [c["type"] for c in conditions] == ["Ready", "Reconciling", "Stalled"]
    true = [c["type"] for c in conditions if c["status"] == "True"]
    assert true == [PHASE_CONDITION[phase]]
    assert all(c["status"] in ("True", "False") for c in conditions)


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_conditions_all_carry_reason_message_and_observed_generation(phase: str) -> None:
    state = PHASES[phase]
    for condition in conditions_for(state, 7, now=T0):
        assert condition["reason"] == state.reason
        assert condition["message"] == state.message
        assert condition["observedGeneration"] == 7
        assert condition["lastTransitionTime"] == "2025-03-01T12:00:00Z"


def test_conditions_first_time_stamps_now_in_rfc3339_utc() -> None:
    conditions = conditions_for(PHASES["ready"], 1, now=datetime(2025, 3, 1, 12, 0, 0, 987000, tzinfo=UTC))
    assert {c["lastTransitionTime"] for c in conditions} == {"2025-03-01T12:00:00Z"}


def test_conditions_non_utc_now_is_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    conditions = conditions_for(PHASES["ready"], 1, now=T0.astimezone(tokyo))
    # The instant is the same; what is written is in UTC with a Z (Kubernetes' format).
    assert {c["lastTransitionTime"] for c in conditions} == {"2025-03-01T12:00:00Z"}


def test_conditions_keep_transition_time_when_status_unchanged_even_if_reason_changes() -> None:
    first = conditions_for(PHASES["reconciling"], 1, now=T0)
    again = conditions_for(State("reconciling", "Throttled", "rate exceeded"), 2, previous=first, now=T1)
    for condition in again:
        assert condition["lastTransitionTime"] == "2025-03-01T12:00:00Z", condition["type"]
    # ... while reason, message and generation follow the new state.
    assert by_type(again)["Reconciling"]["reason"] == "Throttled"
    assert by_type(again)["Ready"]["observedGeneration"] == 2


def test_conditions_move_transition_time_only_for_conditions_whose_status_changed() -> None:
    first = conditions_for(PHASES["reconciling"], 1, now=T0)
    done = by_type(conditions_for(PHASES["ready"], 1, previous=first, now=T1))
    assert done["Ready"]["lastTransitionTime"] == "2025-03-01T12:05:00Z"  # False -> True
    assert done["Reconciling"]["lastTransitionTime"] == "2025-03-01T12:05:00Z"  # True -> False
    assert done["Stalled"]["lastTransitionTime"] == "2025-03-01T12:00:00Z"  # False -> False


def test_conditions_transition_chain_over_three_steps() -> None:
    step1 = conditions_for(PHASES["reconciling"], 1, now=T0)
    step2 = conditions_for(PHASES["stalled"], 1, previous=step1, now=T1)
    step3 = by_type(conditions_for(PHASES["stalled"], 2, previous=step2, now=T2))
    assert step3["Ready"]["lastTransitionTime"] == "2025-03-01T12:00:00Z"
    assert step3["Reconciling"]["lastTransitionTime"] == "2025-03-01T12:05:00Z"
    assert step3["Stalled"]["lastTransitionTime"] == "2025-03-01T12:05:00Z"


def test_conditions_previous_without_transition_time_gets_now() -> None:
    previous = [{"type": "Ready", "status": "False"}]
    ready = by_type(conditions_for(PHASES["reconciling"], 1, previous=previous, now=T1))["Ready"]
    assert ready["lastTransitionTime"] == "2025-03-01T12:05:00Z"


def test_conditions_ignore_unrelated_previous_conditions() -> None:
    previous = [{"type": "Other", "status": "True", "lastTransitionTime": "2000-01-01T00:00:00Z"}]
    conditions = conditions_for(PHASES["ready"], 1, previous=previous, now=T0)
    assert [c["type"] for c in conditions] == ["Ready", "Reconciling", "Stalled"]
    assert {c["lastTransitionTime"] for c in conditions} == {"2025-03-01T12:00:00Z"}


def test_conditions_accept_no_generation() -> None:
    conditions = conditions_for(PHASES["ready"], None, now=T0)
    assert all(c["observedGeneration"] is None for c in conditions)


def test_current_reason_is_the_ready_conditions_reason() -> None:
    conditions = conditions_for(PHASES["stalled"], 1, now=T0)
    assert current_reason(conditions) == "InvalidSpec"


@pytest.mark.parametrize(
    "conditions",
    [[], [{"type": "Stalled", "reason": "X"}], [{"type": "Ready", "reason": ""}], [{"type": "Ready"}]],
)
def test_current_reason_is_none_without_a_ready_reason(conditions: list[dict[str, Any]]) -> None:
    assert current_reason(conditions) is None


# ---- is_terminal ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED"])
def test_is_terminal_for_completed_and_failed(status: str) -> None:
    assert is_terminal(status) is True


@pytest.mark.parametrize(
    "status", ["RUNNING", "PENDING", "IN_PROGRESS", "CANCELLED?", "completed", "failed", "", None]
)
def test_is_terminal_false_for_anything_else(status: str | None) -> None:
    assert is_terminal(status) is False


# ---- backoff_delay -------------------------------------------------------------------------------


class WindowProbe(random.Random):
    """Records the window ``backoff_delay`` draws from, and answers its upper end."""

    def __init__(self) -> None:
        super().__init__(0)
        self.windows: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.windows.append((a, b))
        return b


@pytest.mark.parametrize("retry", range(12))
def test_backoff_delay_within_base_and_exponential_window(retry: int) -> None:
    base, cap = 5.0, 300.0
    upper = min(cap, base * 2**retry)
    for seed in range(50):
        delay = backoff_delay(retry, base, cap, random.Random(seed))
        assert base <= delay <= upper, (retry, seed, delay)


def test_backoff_delay_window_doubles_with_each_retry_until_cap() -> None:
    probe = WindowProbe()
    uppers = [backoff_delay(retry, 5.0, 300.0, probe) for retry in range(10)]
    assert uppers == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0]
    assert all(low == 5.0 for low, _ in probe.windows)


def test_backoff_delay_observed_maximum_grows_with_retry() -> None:
    maxima = [max(backoff_delay(r, 1.0, 1000.0, random.Random(s)) for s in range(200)) for r in range(6)]
    assert maxima == sorted(maxima)
    assert maxima[0] == 1.0
    assert maxima[5] > 16.0  # the window at retry 5 is [1, 32]; 200 draws go past its midpoint


@pytest.mark.parametrize("retry", [10, 31, 32, 33, 64, 1_000, 10**9, 10**18])
def test_backoff_delay_never_exceeds_cap_and_huge_retries_do_not_overflow(retry: int) -> None:
    for seed in range(20):
        delay = backoff_delay(retry, 5.0, 300.0, random.Random(seed))
        assert 5.0 <= delay <= 300.0
    assert backoff_delay(retry, 5.0, 300.0, WindowProbe()) == 300.0


def test_backoff_delay_with_huge_cap_and_huge_retry_stays_finite() -> None:
    delay = backoff_delay(10**12, 1.0, 1e300, WindowProbe())
    assert delay < float("inf")
    assert delay == 2.0**32


def test_backoff_delay_is_spread_across_seeds() -> None:
    delays = {backoff_delay(4, 5.0, 300.0, random.Random(seed)) for seed in range(20)}
    assert len(delays) > 10


def test_backoff_delay_same_seed_same_delay() -> None:
    assert backoff_delay(3, 5.0, 300.0, random.Random(42)) == backoff_delay(3, 5.0, 300.0, random.Random(42))


def test_backoff_delay_first_retry_is_base() -> None:
    assert backoff_delay(0, 5.0, 300.0, random.Random(1)) == 5.0


def test_backoff_delay_without_rng_uses_module_random() -> None:
    delays = [backoff_delay(6, 5.0, 300.0) for _ in range(20)]
    assert all(5.0 <= d <= 300.0 for d in delays)
    assert len(set(delays)) > 1
