"""What an import (``spec.import``) reads and sees, as plain values: the ids it asks for, the auth
resources GetBackend shows on the app/env, and the reads that fill them in.

Pure: :mod:`decide` holds these in its snapshot and plans, :mod:`import_variant` decides on them
and :mod:`~runtime.import_reads` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from backendauth_operator.core.failure import Failure

#: amplify-meta's ``output`` keys as :class:`~models.AuthOutputs` names them → the import's keys.
OUTPUT_IDS = {
    "userPoolId": "userPoolId",
    "appClientIdWeb": "webClientId",
    "appClientId": "nativeClientId",
    "identityPoolId": "identityPoolId",
}


@dataclass(frozen=True)
class ImportIds:
    """The ids of an import: the spec's (as read) or those of a link AWS shows."""

    user_pool_id: str
    web_client_id: str | None = None
    native_client_id: str | None = None
    identity_pool_id: str | None = None

    @classmethod
    def of(cls, values: Mapping[str, str | None]) -> ImportIds:
        """From the import's keys (``userPoolId``, ``webClientId``, ...)."""
        return cls(
            str(values.get("userPoolId") or ""),
            values.get("webClientId") or None,
            values.get("nativeClientId") or None,
            values.get("identityPoolId") or None,
        )

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str]) -> ImportIds:
        """From the auth outputs GetBackend shows (``appClientIdWeb``...)."""
        return cls.of({ours: outputs.get(theirs) for theirs, ours in OUTPUT_IDS.items()})

    def items(self) -> tuple[tuple[str, str | None], ...]:
        return (
            ("userPoolId", self.user_pool_id),
            ("webClientId", self.web_client_id),
            ("nativeClientId", self.native_client_id),
            ("identityPoolId", self.identity_pool_id),
        )

    def as_dict(self) -> dict[str, str]:
        """The ids given, by key (``identityPoolId`` only when there is one)."""
        return {key: value for key, value in self.items() if value}

    def describe(self) -> str:
        """``userPoolId eu-west-1_Ab, webClientId 1a, nativeClientId 2b`` (no identity pool:
        said so)."""
        shown = [f"{key} {value}" for key, value in self.items() if value]
        if not self.identity_pool_id:
            shown.append("no identityPoolId")
        return ", ".join(shown)


@dataclass(frozen=True)
class Link:
    """An auth resource GetBackend shows on the app/env: its name, ``serviceType`` (``imported``
    or ``managed``) and the ids its ``output`` holds."""

    name: str
    service_type: str
    ids: ImportIds

    @property
    def outputs(self) -> dict[str, str]:
        """Its ids under the keys of ``status.outputs``."""
        by_ours = {ours: theirs for theirs, ours in OUTPUT_IDS.items()}
        return {by_ours[key]: value for key, value in self.ids.as_dict().items()}


@dataclass(frozen=True)
class ImportProblem:
    """Why the pools cannot be imported as given (reason ``InvalidImport``), naming the id."""

    message: str


# ---- the reads of an import: each result comes back as a field of the next snapshot -------------


@dataclass(frozen=True)
class ReadImportIds:
    """The ids of ``spec.import``, each literal or read from its ConfigMap or Secret key, into
    :attr:`~decide.Snapshot.import_ids`."""


@dataclass(frozen=True)
class ReadLinks:
    """GetBackend: the auth resources on the app/env, into
    :attr:`~decide.Observation.links` (the one AWS read of an imported resource)."""


@dataclass(frozen=True)
class CheckImport:
    """The Cognito reads that check the pools before any job, into
    :attr:`~decide.Snapshot.import_check`: the user pool, both app clients, the identity pool."""


ImportRead = ReadImportIds | ReadLinks | CheckImport

#: What reading the ids came to: the ids, or why not (a missing ConfigMap, Secret or key: a
#: retryable failure; a value that is no id: InvalidImport, not retryable).
IdsRead = ImportIds | Failure
#: What the checks came to: nothing wrong (None), a problem, or a failed read.
Checked = ImportProblem | Failure | None


@dataclass(frozen=True)
class ImportCheck:
    """The pools as :class:`CheckImport` checked them."""

    found: Checked  # what was found wrong, or why the check could not be made; None: nothing
