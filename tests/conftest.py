"""Shared fixtures. Integration fixtures start real servers on 127.0.0.1 and clean them up."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backendauth_operator.commands.crd import build_crd
from backendauth_testbed.simulator import SimulatorConfig
from harness import Bed, kubectl_binary

# A real kube-apiserver and etcd (tests/kube/): the real_cluster, real_namespace and make_real_bed
# fixtures, and the build of the binaries before the first test that needs them. The operator's
# image (tests/docker/): the operator_image fixture, built before the first test marked image. A
# real node (tests/node/): its binaries and the operator image, built before the first test marked
# real_node.
pytest_plugins = ["real_apiserver", "docker_image", "real_node"]


def _put_kubectl_on_path() -> None:
    """Tests that run plain ``kubectl`` get the harness's choice: ``$BACKENDAUTH_KUBECTL``, else the
    one on PATH, else the one tests/kube/build.sh built (a machine without kubectl)."""
    chosen = kubectl_binary()
    if not os.path.isabs(chosen) or shutil.which("kubectl") == chosen:
        return
    bin_dir = tempfile.mkdtemp(prefix="backendauth-kubectl-")
    atexit.register(shutil.rmtree, bin_dir, True)
    os.symlink(chosen, os.path.join(bin_dir, "kubectl"))
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


_put_kubectl_on_path()


def permissive_crd() -> dict[str, Any]:
    """The CRD with no spec validation: stands for objects that reached the cluster around the
    schema (an older CRD, a disabled admission), so the operator's own checks are exercised."""
    crd = copy.deepcopy(build_crd())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return crd


@pytest.fixture
def make_bed(tmp_path: Path) -> Iterator[Callable[..., Bed]]:
    """Build a test bed; ``permissive=True`` installs the CRD without spec validation."""
    beds: list[Bed] = []

    def make(permissive: bool = False, start_operator: bool = True, **sim: Any) -> Bed:
        config = SimulatorConfig(**{"auto_apps": True, "job_seconds": 0.5, **sim})
        bed = Bed(tmp_path / f"bed{len(beds)}", permissive_crd() if permissive else build_crd(), config)
        beds.append(bed)
        if start_operator:
            bed.operator.start()
        return bed

    (tmp_path / "bed0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"bed{i}").mkdir()
    yield make
    for bed in beds:
        bed.close()


@pytest.fixture
def bed(make_bed: Callable[..., Bed]) -> Bed:
    """The usual test bed: the real CRD, a simulator with auto-registered apps, the operator."""
    return make_bed()
