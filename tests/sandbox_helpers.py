"""Helpers for the sandbox tests: the fixture CRD, objects, kubectl, and polling with a deadline."""

from __future__ import annotations

import copy
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
GROUP, VERSION, PLURAL = "amplifybackend.gitops.dev", "v1alpha1", "backendauths"
API_VERSION = f"{GROUP}/{VERSION}"
T = TypeVar("T")


def fixture_crd() -> dict[str, Any]:
    """The small stand-in CRD of tests/fixtures (same names and columns as the real one)."""
    crd: dict[str, Any] = yaml.safe_load((FIXTURES / "sandbox-backendauth-crd.yaml").read_text())
    return crd


def backendauth(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """A BackendAuth valid under the fixture CRD; ``spec`` keys override the defaults."""
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "BackendAuth",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "appId": "d1a2b3c4",
            "backendEnvironmentName": "staging",
            "resourceConfig": {"userPoolConfigs": {"signInMethod": "EMAIL"}},
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def wait_for(condition: Callable[[], T], timeout: float = 10, what: str = "the condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # a polling interval, not a synchronisation


class Kubectl:
    """The real kubectl binary against one kubeconfig (with its own discovery cache)."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(cache_dir)}

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS``; with ``check``, fail the test (showing stderr) on a non-zero exit."""
        result = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply(self, *objects: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` with these objects."""
        return self.run("apply", "-f", "-", stdin=yaml.safe_dump_all(objects), check=check)
