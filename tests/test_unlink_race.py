"""Unlinking an import that the deletion has not seen linked: an import that ends between
GetBackend and ListBackendJobs shows in neither read. The deletion must not take that for
"nothing to unlink" and let the object go with the link left in AWS."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from backendauth_operator.core.bookkeeping import Job
from backendauth_operator.core.failure import Failure
from backendauth_operator.runtime import effects, import_reads

NOT_FOUND = Failure("NotFound", False, "no auth resource on d1a2b3c4d5e6f7/staging is linked to the ids")


class FakeAmplify:
    def __init__(self, running: list[Job]) -> None:
        self.running = running

    def unfinished_jobs(self, app: str, env: str) -> list[Job]:
        return self.running


def unlink(monkeypatch: pytest.MonkeyPatch, answers: list[str | Failure], running: list[Job]) -> Any:
    """``unlinked_name`` with GetBackend answering ``answers`` in turn (what it links to the ids)."""
    asked: list[str | Failure] = []

    def linked_name(aws: Any, app: str, env: str, ids: Any) -> str | Failure:
        asked.append(answers[len(asked)])
        return asked[-1]

    monkeypatch.setattr(import_reads, "read_ids", lambda kube, namespace, config: object())
    monkeypatch.setattr(import_reads, "linked_name", linked_name)
    live = effects.LiveEffects(clients=None, kube=None, leases=None, logger=None)  # type: ignore[arg-type]
    monkeypatch.setattr(live, "aws", lambda s: FakeAmplify(running))
    s = SimpleNamespace(spec=SimpleNamespace(import_=object()), namespace="default", app="d1a2b3c4d5e6f7",
                        env="staging")  # fmt: skip
    return live.unlinked_name(s), len(asked)  # type: ignore[arg-type]


def test_an_import_that_ended_between_the_two_reads_is_found_by_a_second_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, reads = unlink(monkeypatch, [NOT_FOUND, "importedAuth"], running=[])
    assert (found, reads) == ("importedAuth", 2)


def test_nothing_linked_and_nothing_running_is_not_found_after_the_second_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, reads = unlink(monkeypatch, [NOT_FOUND, NOT_FOUND], running=[])
    assert found == NOT_FOUND and reads == 2


def test_an_import_still_running_makes_the_unlink_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(
        id="j-1", operation="ImportBackendAuth", app_id="d1a2b3c4d5e6f7", env="staging", status="IN_PROGRESS"
    )
    found, reads = unlink(monkeypatch, [NOT_FOUND], running=[job])
    assert isinstance(found, Failure) and found.reason == "JobPending" and found.retryable
    assert "the unlink waits for it" in found.message and reads == 1


def test_a_link_seen_at_once_needs_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unlink(monkeypatch, ["importedAuth"], running=[]) == ("importedAuth", 1)
