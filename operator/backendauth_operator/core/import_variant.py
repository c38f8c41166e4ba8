"""The import variant (``spec.import``): existing Cognito pools linked to the backend environment
by ImportBackendAuth. Pure, like :func:`~decide.decide`, which asks it two things:

* how AWS is observed: the spec's ids are read (each a literal or a ConfigMap or Secret key),
  then GetBackend shows the auth resources on the app/env with their ids; that is the one AWS read
  of a settled import, as AWS's own name for the link, and whether GetBackendAuth answers for
  it, are not documented;
* what an observation means, whatever ``driftPolicy`` says:

  ====================================  ================================================
  GetBackend shows on the app/env        the operator
  ====================================  ================================================
  no auth resource                       checks the pools (Cognito reads), then one
                                         ImportBackendAuth; ``InvalidImport`` if they
                                         cannot be imported as given
  one with the spec's ids                Ready, no call (an existing link is adopted)
  one with other ids                     Stalled ``ImportConflict``, naming both sets of
                                         ids; no call: it never re-links nor unlinks
  ====================================  ================================================

The job itself (the pending marker, recovery by ListBackendJobs, the turn, fencing, pause,
deletion) is the shared machinery of :mod:`decide`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from backendauth_operator.core.bookkeeping import COMPLETED, IMPORT, Job
from backendauth_operator.core.decide import (
    SECRET_RETRY_CAP,
    Observation,
    Plan,
    Snapshot,
    _fail,
    _look_again,
    _ready,
    _stall,
    _submit,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.import_types import (
    CheckImport,
    ImportIds,
    ImportProblem,
    Link,
    ReadImportIds,
    ReadLinks,
)

#: The Cognito reads that check the pools before a job (the IAM actions, for the policy).
CHECK_ACTIONS = (
    "cognito-idp:DescribeUserPool",
    "cognito-idp:DescribeUserPoolClient",
    "cognito-identity:DescribeIdentityPool",
)


class ImportedAuth:
    """:class:`~decide.Variant` of ``spec.import``."""

    def observe(self, s: Snapshot) -> Plan:
        ids = s.import_ids
        if ids is None:
            return ReadImportIds()
        if isinstance(ids, Failure):
            if ids.retryable:  # a ConfigMap, Secret or key not there yet
                return _fail(ids, SECRET_RETRY_CAP)
            return _stall(s, ids.reason, ids.message)
        return ReadLinks()

    def decide_seen(
        self, s: Snapshot, seen: Observation, job: Job | None, current: bool, owned: bool, kw: dict[str, Any]
    ) -> Plan:
        wanted = s.import_ids
        assert isinstance(wanted, ImportIds), "observed only once the ids were read"
        links = seen.links or ()
        same = next((link for link in links if link.ids == wanted), None)
        if same is not None:
            return _linked(s, same, job, current, kw)
        if links:
            return _conflict(s, links, wanted, job, kw)
        if job is not None and current and job.completed and not job.missing:
            message = (
                f"{job.describe()} completed, but GetBackend shows no auth resource on "
                f"{s.app}/{s.env}; the pools will be imported again"
            )
            return _look_again(s, job, "ResourceMissing", message, kw)
        if s.import_check is None:
            return CheckImport()
        checked = s.import_check.found
        if isinstance(checked, ImportProblem):
            return _stall(s, "InvalidImport", checked.message, **{**kw, "own": False})
        if isinstance(checked, Failure):
            if checked.retryable:
                return _fail(checked)
            # AccessDenied (naming the action), or an endpoint without the read: never InvalidImport.
            return _stall(s, checked.reason, checked.message, **{**kw, "own": False})
        return _submit(IMPORT, **{**kw, "own": False})


IMPORTED_AUTH = ImportedAuth()


def _linked(s: Snapshot, link: Link, job: Job | None, current: bool, kw: dict[str, Any]) -> Plan:
    """GetBackend shows the pools linked as the spec says: Ready, with no call."""
    message = f"AWS shows auth resource {link.name} on {s.app}/{s.env} linked to {link.ids.describe()}"
    if job is not None and current and job.completed and job.id:
        # Our import: its first observation verifies it.
        seen_job = replace(job, verified=True, missing=False, resource=link.name)
        return _ready(
            s, seen_job, "JobCompleted", f"{job.describe()} completed; {message}",
            event=None if job.verified else "Normal", **kw,
        )  # fmt: skip
    kw = {**kw, "own": not s.owned}
    adopted = kw["own"] and s.marker is None
    if job is not None and current and job.completed:
        # The record of an observation alone: it stays shown as it was.
        reason = s.previous_reason if s.previous_reason in ("InSync", "Adopted") else "InSync"
        seen_job = replace(job, verified=True, missing=False, resource=link.name)
        return _ready(s, seen_job, reason, message, event=None, **kw)
    # Linked before this BackendAuth looked (applied again after a Retain, or by hand), or by
    # our own import whose answer was lost: adopted, with no call.
    record = Job(
        "", "", COMPLETED, s.app, s.env, generation=s.generation, fingerprint=s.fingerprint,
        verified=True, account=job.account if job is not None else "", resource=link.name,
    )  # fmt: skip
    return _ready(
        s, record, "Adopted" if adopted else "InSync", message,
        event=None if adopted else "Normal", event_reason="Adopted" if adopted else None, **kw,
    )  # fmt: skip


def _conflict(
    s: Snapshot, links: tuple[Link, ...], wanted: ImportIds, job: Job | None, kw: dict[str, Any]
) -> Plan:
    """AWS links other pools: say so, and what a person does; never re-link nor unlink."""
    shown = "; ".join(
        f"auth resource {link.name} ({link.service_type or 'of unknown type'}) with {link.ids.describe()}"
        for link in links
    )
    names = ", ".join(link.name for link in links)
    message = (
        f"AWS shows {shown} on {s.app}/{s.env}, but spec.import asks for {wanted.describe()}. "
        "The operator neither re-links nor unlinks on its own: set spec.import (or the ConfigMap or "
        f"Secret it reads) to the ids AWS shows, or remove {names} from the backend environment "
        "(Amplify Studio, or DeleteBackendAuth) and set the reconcile-requested-at annotation"
    )
    return _stall(s, "ImportConflict", message, job, **kw)
