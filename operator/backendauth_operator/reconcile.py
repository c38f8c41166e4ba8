"""Pure decisions: the status to show, the conditions, the retry delay, the job to adopt.

Nothing here talks to Kubernetes or AWS, so every rule is tested on its own.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

TERMINAL_SUCCESS = "COMPLETED"
TERMINAL_FAILURE = "FAILED"

Phase = Literal["ready", "reconciling", "stalled"]


@dataclass(frozen=True)
class State:
    """The one thing a BackendAuth is doing now, as the conditions will show it.

    ``reason`` is a CamelCase word from CONTRACT §5 (JobCompleted, Throttled, InvalidSpec, ...).
    """

    phase: Phase
    reason: str
    message: str


def is_terminal(job_status: str | None) -> bool:
    """Only COMPLETED and FAILED end a job; any other value, known or not, means still running."""
    return job_status in (TERMINAL_SUCCESS, TERMINAL_FAILURE)


def now_rfc3339(now: datetime | None = None) -> str:
    """A Kubernetes-style timestamp (seconds, UTC, ``Z``)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(
    state: State,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled for ``state`` (kstatus): exactly one phase is True.

    ``lastTransitionTime`` moves only when a condition's status changes, as Kubernetes expects.
    """
    stamp = now_rfc3339(now)
    before = {c.get("type"): c for c in previous}
    out = []
    for ctype, active in (
        ("Ready", state.phase == "ready"),
        ("Reconciling", state.phase == "reconciling"),
        ("Stalled", state.phase == "stalled"),
    ):
        status = "True" if active else "False"
        old = before.get(ctype)
        changed = old is None or old.get("status") != status
        since = stamp if old is None or changed else old.get("lastTransitionTime", stamp)
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": state.reason,
                "message": state.message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }
        )
    return out


def current_reason(conditions: Iterable[Mapping[str, Any]]) -> str | None:
    """The reason the conditions show now (they all carry the same one)."""
    for condition in conditions:
        if condition.get("type") == "Ready":
            return str(condition.get("reason") or "") or None
    return None


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, kept between ``base`` and ``cap``.

    The window doubles with each retry (base, 2·base, 4·base, ... up to cap); the delay is drawn
    uniformly within it, so that many BackendAuths throttled together do not retry together.
    """
    upper = min(cap, base * (2 ** min(retry, 32)))
    return (rng or random).uniform(base, max(base, upper))


def parse_aws_time(value: Any) -> datetime | None:
    """AWS's CreateTime is an untyped string: accept ISO 8601 and epoch seconds or milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    except (ValueError, OverflowError, OSError):  # nan, inf, out of range: unreadable
        return None


CLOCK_SKEW = timedelta(minutes=2)


def pick_recovered_job(
    jobs: Iterable[Mapping[str, Any]], operation: str, marked_at: datetime
) -> Mapping[str, Any] | None:
    """The job our interrupted call most likely started: the newest ``operation`` job created
    no earlier than the pending marker (less a clock-skew allowance).

    Jobs whose time cannot be read count as candidates: adopting a job twice is harmless,
    creating twice is not.
    """
    best: Mapping[str, Any] | None = None
    best_time: datetime | None = None
    for job in jobs:
        if job.get("Operation") not in (operation, None):
            continue
        created = parse_aws_time(job.get("CreateTime"))
        if created is not None and created < marked_at - CLOCK_SKEW:
            continue
        if best is None or (created is not None and (best_time is None or created > best_time)):
            best, best_time = job, created
    return best
