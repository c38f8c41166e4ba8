"""The poller: two heaps and one thread step every waiting BackendAuth again (no timer per object)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from backendauth_operator.runtime.steps import Bodies, noteworthy
from backendauth_operator.runtime.workqueue import Poller, Watched

DEADLINE = 10.0


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.steps: list[tuple[str, str]] = []
        self.flags: list[bool] = []
        self.fail_first = fail_first
        self.changed = threading.Condition()

    def __call__(self, namespace: str, name: str, from_event: bool = False) -> None:
        with self.changed:
            self.steps.append((namespace, name))
            self.flags.append(from_event)
            self.changed.notify_all()
            if len(self.steps) <= self.fail_first:
                raise RuntimeError("the API server went away")

    def wait_for(self, count: int) -> list[tuple[str, str]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.steps) >= count, DEADLINE), self.steps
            return list(self.steps)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def started(poller: Poller, executor: ThreadPoolExecutor, steps: Recorder) -> Poller:
    poller.start(executor, steps)
    return poller


def test_a_scheduled_object_is_stepped_once_and_forgotten(executor: ThreadPoolExecutor) -> None:
    steps = Recorder()
    poller = started(Poller(0.05), executor, steps)
    poller.schedule("ns", "a")
    assert poller.scheduled("ns", "a")
    assert steps.wait_for(1) == [("ns", "a")]
    assert not poller.scheduled("ns", "a") and len(poller) == 0
    poller.stop()


def test_the_sooner_time_wins_and_an_object_is_stepped_once(executor: ThreadPoolExecutor) -> None:
    steps = Recorder()
    poller = started(Poller(3600), executor, steps)
    poller.schedule("ns", "a")  # an hour away
    poller.schedule("ns", "a", delay=0.01)  # sooner: replaces it
    poller.schedule("ns", "a", delay=3600)  # later: ignored
    assert steps.wait_for(1) == [("ns", "a")]
    assert len(poller) == 0  # the hour-away entry is gone with it
    poller.stop()


def test_due_objects_are_stepped_in_due_order(executor: ThreadPoolExecutor) -> None:
    steps = Recorder()
    poller = Poller(3600)
    for i, delay in enumerate([0.3, 0.1, 0.2]):
        poller.schedule("ns", f"o{i}", delay=delay)
    with ThreadPoolExecutor(1) as serial:  # one thread: the order of submission is observable
        poller.start(serial, steps)
        assert steps.wait_for(3) == [("ns", "o1"), ("ns", "o2"), ("ns", "o0")]
        poller.stop()


def test_a_failed_step_is_scheduled_again(executor: ThreadPoolExecutor) -> None:
    steps = Recorder(fail_first=1)
    poller = started(Poller(0.05), executor, steps)
    poller.schedule("ns", "a", delay=0)
    assert steps.wait_for(2) == [("ns", "a"), ("ns", "a")]
    poller.stop()


def test_ensure_schedules_within_one_interval_and_never_twice() -> None:
    poller = Poller(10)  # not started: nothing runs
    before = time.monotonic()
    poller.ensure("ns", "a")
    poller.ensure("ns", "a")
    assert len(poller) == 1
    (due,) = poller._polls.values()
    assert before + 1.0 <= due <= time.monotonic() + 10


def test_an_events_step_is_marked_unless_a_poll_was_due_too(executor: ThreadPoolExecutor) -> None:
    steps = Recorder()
    poller = Poller(3600)
    poller.schedule("ns", "new", delay=-1, from_event=True)
    poller.schedule("ns", "both", delay=-1)  # a waiting object, due to be polled...
    poller.schedule("ns", "both", delay=-1, from_event=True)  # ...whose spec changed: one full step
    poller.schedule("ns", "later", delay=3600)  # a waiting object polled later...
    poller.schedule("ns", "later", delay=-1, from_event=True)  # ...whose event's step comes first
    started(poller, executor, steps)
    steps.wait_for(3)
    assert sorted(zip(steps.steps, steps.flags, strict=True)) == [
        (("ns", "both"), False), (("ns", "later"), True), (("ns", "new"), True)
    ]  # fmt: skip
    assert poller.scheduled("ns", "later"), "the event's step left its poll scheduled"
    assert len(poller) == 1
    poller.stop()


def test_a_poll_ensured_after_an_events_step_makes_it_a_full_step(executor: ThreadPoolExecutor) -> None:
    steps = Recorder()
    poller = Poller(3600)
    poller.schedule("ns", "a", delay=0.05, from_event=True)  # a new object, its step not yet run...
    poller.ensure("ns", "a")  # ...which the next event shows waiting: it must be polled
    started(poller, executor, steps)
    steps.wait_for(1)
    assert steps.flags == [False]
    poller.stop()


def test_a_standby_that_leads_polls_the_job_the_old_leader_left_running(
    executor: ThreadPoolExecutor,
) -> None:
    """A BackendAuth created while this process stands by: it sees the object new (an event
    asks for its step), then as the leader left it, a job running. When this process leads,
    its step must poll the job, not only look whether an event still asks for something."""
    leading = threading.Event()
    poller = Poller(3600)
    poller.acting = leading.is_set
    ctx = SimpleNamespace(
        watched=Watched(),
        poller=poller,
        gate=SimpleNamespace(acting=leading.is_set),
        deletions=set(),
        bodies=Bodies(),
    )
    memo = SimpleNamespace(ctx=ctx)
    meta = {"namespace": "ns", "name": "a", "uid": "u1", "generation": 1}
    running = [
        {"type": "Ready", "status": "False", "reason": "JobInProgress"},
        {"type": "Reconciling", "status": "True", "reason": "JobInProgress"},
    ]

    def event(type: str, body: dict[str, Any]) -> None:
        # The filter does the work: Kopf runs no handler for a BackendAuth's events.
        assert noteworthy(memo, kopf.Body(body), event={"type": type, "object": body}, type=type) is False

    event("ADDED", {"metadata": meta, "spec": {}})
    status = {"observedGeneration": 1, "conditions": running}  # the leader's step submitted the job
    event("MODIFIED", {"metadata": meta, "spec": {}, "status": status})
    steps = Recorder()
    started(poller, executor, steps)
    leading.set()
    steps.wait_for(1)
    assert steps.flags == [False], "a step only for the event would find nothing asked, and end the polling"
    poller.stop()


def test_the_registry_remembers_the_generation_a_step_showed_across_later_events() -> None:
    """Events from before a step's status write still show the old status: they start no step."""
    watched = Watched()
    body = {"metadata": {"namespace": "ns", "name": "a", "uid": "u1", "generation": 1}, "spec": {}}
    watched.update(body)
    assert not watched.has_shown("u1", 1)
    watched.shown("u1", 1)
    watched.update(body)  # a stale event: still no status in it
    assert watched.has_shown("u1", 1)
    assert not watched.has_shown("u1", 2), "a changed spec is a new generation"
    watched.forget("u1")
    assert not watched.has_shown("u1", 1)


def test_an_object_shown_waiting_while_its_step_runs_is_polled_one_interval_on(
    executor: ThreadPoolExecutor,
) -> None:
    """The watch event of a step's own write (the job it started) comes while the step still
    runs. The poll is the one the step schedules, an interval on, not an early one that would
    find the job still running."""
    poller = Poller(3600)
    steps = Recorder()
    early: list[bool] = []

    def step(namespace: str, name: str, from_event: bool = False) -> None:
        poller.ensure(namespace, name)  # the event of the step's write, while it runs
        early.append(poller.scheduled(namespace, name))
        poller.schedule(namespace, name)  # the step leaves it waiting
        steps(namespace, name, from_event)

    poller.start(executor, step)
    before = time.monotonic()
    poller.schedule("ns", "a", delay=0, from_event=True)
    steps.wait_for(1)  # recorded after the step's ensure and schedule
    assert early == [False]
    assert poller._polls[("ns", "a")] >= before + 3600, "polled one interval on, not earlier"
    poller.stop()


def test_an_object_shown_waiting_while_its_step_runs_is_polled_if_the_step_did_not_schedule_it(
    executor: ThreadPoolExecutor,
) -> None:
    poller = Poller(0.05)
    steps = Recorder()

    def step(namespace: str, name: str, from_event: bool = False) -> None:
        if not steps.steps:
            poller.ensure(namespace, name)  # shown waiting, and this step schedules nothing
        steps(namespace, name, from_event)

    poller.start(executor, step)
    poller.schedule("ns", "a", delay=0, from_event=True)
    assert steps.wait_for(2) == [("ns", "a"), ("ns", "a")]
    assert steps.flags == [True, False]
    poller.stop()


def test_waiting_and_asked_for_objects_take_turns_when_both_are_due() -> None:
    """A thousand new objects do not hold back the polls of the jobs already running, nor do
    the polls hold back the new objects."""
    steps = Recorder()
    poller = Poller(3600)
    for i in range(3):  # all due already when the poller starts
        poller.schedule("ns", f"new{i}", delay=-1 + 0.001 * i, from_event=True)
        poller.schedule("ns", f"job{i}", delay=-2 + 0.001 * i)
    with ThreadPoolExecutor(1) as serial:  # one thread: the order of submission is observable
        poller.start(serial, steps)
        order = [name for _, name in steps.wait_for(6)]
        poller.stop()
    assert order == ["job0", "new0", "job1", "new1", "job2", "new2"]
