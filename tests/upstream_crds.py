"""The custom resource definitions of the controllers a BackendAuth's pools are handed to, on the
real API server, to check what ``backendauth-operator export --to crossplane|ack`` writes.

The CRDs are not part of this repository: Crossplane's Upbound AWS provider
(``cognitoidp.aws.upbound.io``, ``cognitoidentity.aws.upbound.io``, from
crossplane-contrib/provider-upjet-aws ``package/crds/``) and ACK's Cognito controller
(``cognitoidentityprovider.services.k8s.aws``, from
aws-controllers-k8s/cognitoidentityprovider-controller ``helm/crds/``). They are read, unchanged,
from a folder ``shared/upstream-crds`` in the folder that holds the checkout, or in one of its
parent folders (a git worktree in a folder of worktrees), or from
``$BACKENDAUTH_UPSTREAM_CRDS``. Where there is no such folder the tests that need it are skipped
with that reason; under ``CI=true`` they fail.

- ``upstream_crds_dir()``: that folder (skip, or fail under CI=true, without it).
- ``install(cluster)``: ``kubectl apply --server-side`` of every CRD in it (the Crossplane
  UserPool CRD is larger than the client-side last-applied annotation allows), then waits until
  each is Established and its schema is published. Idempotent.
- ``dry_run(cluster, docs)``: each document through a server-side dry run
  (``kubectl apply --server-side --dry-run=server``, strict field validation): the CRD's schema,
  its CEL rules and unknown fields all checked by the API server, nothing stored. Returns one
  message per refused document, naming it; an empty list means every document was accepted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import wait_until
from real_apiserver import REPO, RealCluster, in_ci

ENV = "BACKENDAUTH_UPSTREAM_CRDS"
FIELD_MANAGER = "backendauth-handoff-check"
WAIT_SECONDS = 120


def find_upstream_crds(repo: Path = REPO) -> tuple[Path | None, list[Path]]:
    """The folder of upstream CRDs, and the places looked at (for the skip message)."""
    if os.environ.get(ENV):
        folder = Path(os.environ[ENV])
        return (folder if folder.is_dir() else None), [folder]
    looked = [parent / "shared" / "upstream-crds" for parent in repo.resolve().parents]
    for folder in looked:
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder, looked
    return None, looked


def upstream_crds_dir() -> Path:
    """The folder, or skip (fail under CI=true) saying where it was looked for."""
    folder, looked = find_upstream_crds()
    if folder is None:
        where = ", ".join(str(p) for p in looked[:3]) + (", ..." if len(looked) > 3 else "")
        reason = (
            "the Crossplane and ACK CRDs are not beside the checkout (looked for "
            f"shared/upstream-crds at {where}; or set {ENV})"
        )
        if in_ci():
            pytest.fail(f"the upstream CRDs are required under CI=true: {reason}")
        pytest.skip(reason)
    return folder


def crd_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def crds_in(folder: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in crd_files(folder):
        docs += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"
        ]
    return docs


_installed: set[tuple[str, str]] = set()  # (cluster server, folder) already done in this session


def install(cluster: RealCluster, folder: Path | None = None) -> list[dict[str, Any]]:
    """Apply the CRDs server-side, wait until each is Established and its schema is served, and
    return them (as read from the folder)."""
    folder = folder or upstream_crds_dir()
    crds = crds_in(folder)
    key = (cluster.server, str(folder))
    if key in _installed:
        return crds
    args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts"]
    for path in crd_files(folder):
        args += ["-f", str(path)]
    cluster.kubectl(*args, timeout=180)
    names = [f"crd/{crd['metadata']['name']}" for crd in crds]
    cluster.kubectl(
        "wait", "--for=condition=Established", *names, f"--timeout={WAIT_SECONDS}s", timeout=WAIT_SECONDS + 30
    )
    # Established comes a moment before the server publishes the schema it validates with.
    for crd in crds:
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            _wait_explained(cluster, crd["spec"]["names"]["plural"], api_version)
    _installed.add(key)
    return crds


def _wait_explained(cluster: RealCluster, plural: str, api_version: str) -> None:
    def explained() -> bool:
        result = cluster.kubectl("explain", f"{plural}.spec", f"--api-version={api_version}", check=False)
        return result.returncode == 0

    wait_until(explained, WAIT_SECONDS, f"the API server to publish the schema of {plural} {api_version}")


def describe(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    name = metadata.get("name", "?")
    if metadata.get("namespace"):
        name = f"{metadata['namespace']}/{name}"
    return f"{doc.get('kind', '?')} {doc.get('apiVersion', '?')} {name}"


def dry_run(cluster: RealCluster, docs: Iterable[dict[str, Any] | None]) -> list[str]:
    """A server-side dry run of each document (strict field validation); the namespaces they name
    are made first (a dry run into a missing namespace is refused for that reason alone). One
    message per refused document, ``"<Kind> <apiVersion> <name>: <the server's words>"``."""
    errors: list[str] = []
    documents = [d for d in docs if d]
    namespaces = sorted({ns for d in documents if (ns := (d.get("metadata") or {}).get("namespace"))})
    for namespace in namespaces:
        if cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0:
            cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for doc in documents:
        result = cluster.kubectl(
            "apply", "--server-side", "--dry-run=server", "--validate=strict",
            f"--field-manager={FIELD_MANAGER}", "-f", "-", input=yaml.safe_dump(doc), check=False,
        )  # fmt: skip
        if result.returncode != 0:
            words = " ".join(result.stderr.split()) or f"kubectl exited {result.returncode}"
            errors.append(f"{describe(doc)}: {words}")
    return errors
