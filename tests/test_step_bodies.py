"""Where a step starts: the freshest body known of an object (steps.Bodies), instead of a GET.

A body is only ever replaced by a newer one, so that a step never starts from an older body than
one already known: an older one could make a step that a watch event asked for find nothing asked.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from backendauth_operator.runtime.leader import SoleOperator
from backendauth_operator.runtime.steps import Bodies, ObjectLocks, step
from backendauth_operator.runtime.workqueue import Poller

KEY = ("default", "auth")


def body(version: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "auth", "resourceVersion": version}, "status": status}


def test_a_step_starts_from_the_event_that_asked_for_it() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("4"))
    assert bodies.take(KEY) == body("4")
    assert bodies.take(KEY) is None, "taken once: without a body the step reads the object"


def test_the_next_step_starts_from_what_the_last_write_returned() -> None:
    bodies = Bodies()
    bodies.left(KEY, body("11", jobId="j"), {"4", "7", "10", "11"})
    assert bodies.take(KEY) == body("11", jobId="j")


def test_the_events_of_a_steps_own_writes_do_not_replace_what_it_left() -> None:
    bodies = Bodies()
    bodies.left(KEY, body("11", jobId="j"), {"4", "7", "10", "11"})
    bodies.seen(KEY, body("10"))  # the event of its annotation patch, delivered after the step
    assert bodies.take(KEY) == body("11", jobId="j")


def test_an_event_of_its_own_writes_seen_during_the_step_gives_way_to_what_it_left() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("10"))
    bodies.left(KEY, body("11", jobId="j"), {"4", "7", "10", "11"})
    assert bodies.take(KEY) == body("11", jobId="j")


def test_anyone_elses_change_wins_over_what_a_step_left() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("12"))  # a user's change, during the step (its write will be refused)
    bodies.left(KEY, body("11", jobId="j"), {"4", "11"})
    assert bodies.take(KEY) == body("12")
    bodies.left(KEY, body("11", jobId="j"), {"4", "11"})
    bodies.seen(KEY, body("13"))  # and after it
    assert bodies.take(KEY) == body("13")


def test_a_dropped_object_keeps_nothing() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("4"))
    bodies.drop(KEY)
    assert len(bodies) == 0 and bodies.take(KEY) is None


def test_a_deleted_object_does_not_drop_the_body_of_a_recreated_one_of_the_same_name() -> None:
    bodies = Bodies()
    recreated = {**body("9"), "metadata": {"resourceVersion": "9", "uid": "new"}}
    bodies.seen(KEY, recreated)
    bodies.drop(KEY, uid="old")  # the old object's DELETED came after the new one's ADDED
    assert bodies.take(KEY) == recreated
    bodies.seen(KEY, recreated)
    bodies.drop(KEY, uid="new")
    assert bodies.take(KEY) is None


def test_a_settled_step_keeps_nothing_but_answers_the_events_of_its_own_writes() -> None:
    bodies = Bodies()
    bodies.left(KEY, body("11", jobId="j"), {"4", "11"}, keep=False)
    assert len(bodies) == 0, "a settled object costs no memory"
    bodies.seen(KEY, body("7"))  # the event of its marker, seen during the step: its step is due
    bodies.left(KEY, body("11", jobId="j"), {"4", "7", "11"}, keep=False)
    assert bodies.take(KEY) == body("11", jobId="j"), "that step finds nothing asked, with no read"


def test_a_step_to_be_read_again_leaves_no_body_of_its_own_versions() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("7"))
    bodies.left(KEY, None, {"4", "7"})
    assert bodies.take(KEY) is None
    bodies.seen(KEY, body("12"))  # anyone else's: kept
    bodies.left(KEY, None, {"4", "7"})
    assert bodies.take(KEY) == body("12")


def test_an_events_step_that_finds_nothing_asked_keeps_a_body_only_for_a_scheduled_step() -> None:
    """The event of a step's own write asks for a step that then finds nothing asked. Its body
    is kept for the poll the poller has scheduled; a settled object's is not kept (its next
    step comes from an event, which brings its body, or a resync), so a thousand settled
    objects do not hold a thousand bodies."""
    settled = {
        "metadata": {"name": "auth", "namespace": "default", "resourceVersion": "9", "generation": 1},
        "status": {"observedGeneration": 1},
    }
    for scheduled in (True, False):
        poller = Poller(3600)  # not started: nothing runs
        if scheduled:
            poller.schedule(*KEY)  # a job runs: the poll a step scheduled
        ctx = SimpleNamespace(gate=SoleOperator(), locks=ObjectLocks(), bodies=Bodies(), poller=poller)
        ctx.bodies.seen(KEY, settled)
        step(ctx, *KEY, logger=None, from_event=True)  # type: ignore[arg-type]
        assert (ctx.bodies.take(KEY) == settled) is scheduled
