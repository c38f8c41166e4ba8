"""Everything the operator takes from Kopf that Kopf does not promise, in one place.

The rest of the operator uses Kopf's public API only (``kopf.*`` and its documented settings).
What is here may change in any Kopf release, so ``tests/test_kopf_private.py`` pins every name
and every log text below to :data:`KOPF_VERSION`, the Kopf release the project pins: taking a
new Kopf means checking these against it, then raising :data:`KOPF_VERSION`.

**Private modules**, and why each is needed:

* ``kopf._core.engines.activities.run_activity``, ``kopf._core.intents.causes.Activity``,
  ``kopf._cogs.structs.ephemera.AnyMemo``, ``kopf._core.engines.indexing.OperatorIndexers``:
  the operator serves the ``--liveness`` address itself, to answer ``/readyz`` beside the
  liveness path; the liveness path answers with the results of Kopf's probe handlers, as Kopf's
  own health server does. Kopf has no public call that runs its probe handlers, and the
  indexers are what such a run reads the indices from (the ones ``kopf.operator`` is given).
* ``kopf._core.engines.peering.Identity``: the type of ``kopf.operator``'s ``identity``, which
  Kopf does not re-export. The operator names itself: Kopf's default identity needs a user
  name, which a container running as a uid without a passwd entry does not have.

**Kopf's log text**, matched where no public hook serves:

* :data:`KOPF_RETRY_WITHOUT_ANSWER`: Kopf logs each retry of a request to the API server at
  ERROR, ``Request attempt <n> failed; will retry: <what> -> <error>``, on whatever logger the
  caller passed; ``settings.networking.error_backoffs`` sets when it retries, not how it says
  so. ``reachability.QuietUnreachableRetries`` keeps the lines for connection errors and
  timeouts for ``--verbose``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from kopf._cogs.structs.ephemera import AnyMemo
from kopf._core.engines import activities
from kopf._core.engines.indexing import OperatorIndexers
from kopf._core.engines.peering import Identity
from kopf._core.intents.causes import Activity

# The Kopf release whose private names and log texts this module was checked against.
KOPF_VERSION = "1.45.2"

# ---- private modules -------------------------------------------------------------------------


def new_indexers() -> OperatorIndexers:
    """Kopf's indexers, to give ``kopf.operator`` and :func:`run_probe_handlers` alike."""
    return OperatorIndexers()


def kopf_identity(name: str) -> Identity:
    """``name`` as ``kopf.operator``'s ``identity``."""
    return Identity(name)


async def run_probe_handlers(
    registry: kopf.OperatorRegistry,
    settings: kopf.OperatorSettings,
    indexers: OperatorIndexers,
    memo: kopf.Memo,
) -> Mapping[str, Any]:
    """The results of the registry's ``@kopf.on.probe`` handlers, by handler id, run as Kopf's
    own health server runs them (all at once)."""
    results = await activities.run_activity(
        lifecycle=kopf.lifecycles.all_at_once, registry=registry, settings=settings,
        activity=Activity.PROBE, indices=indexers.indices, memo=AnyMemo(memo),
    )  # fmt: skip
    return {str(handler_id): result for handler_id, result in results.items()}


# ---- Kopf's log text -------------------------------------------------------------------------

# Kopf: f"Request attempt {idx} failed; will retry: {what} -> {error!r}", for the errors that
# mean no answer came (aiohttp's, asyncio's).
KOPF_RETRY_WITHOUT_ANSWER = (
    r"failed; will retry: .* -> (?:TimeoutError|ConnectionTimeoutError|ServerTimeoutError|SocketTimeoutError|"
    r"ClientConnectorError|ClientConnectorDNSError|ServerDisconnectedError|ClientOSError)\("
)
