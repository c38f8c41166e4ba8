"""What kstatus says about an object: the health Flux, kpt and cli-utils based tools see.

Flux's ``wait: true`` and ``healthChecks`` judge a custom resource with
``sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute``. ``tests/tools/kstatus`` is a small command
around that very function (``tests/tools/build.sh kstatus`` builds it once into a cache outside
the repo); :func:`judge` feeds it objects as the API server returns them.

``status.Compute`` in short: a ``deletionTimestamp`` is Terminating; ``status.observedGeneration``
present and not ``metadata.generation`` is InProgress; ``Reconciling=True`` is InProgress;
``Stalled=True`` is Failed; then ``Ready``: True is Current, False or Unknown InProgress; an object
with none of these (no status at all) is Current, "Resource is current".
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.built import built_tool

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "tests" / "tools" / "build.sh"
BUILD_TIMEOUT = 1800  # a cold build (modules and compilation) on a busy 2-core machine

STATUSES = ("InProgress", "Current", "Failed", "Terminating", "Unknown", "NotFound")


def built_kstatus() -> Path:
    """The kstatus command (skip, or under CI=true fail, without it: ``tools/built.py``)."""
    return built_tool(["bash", str(BUILD_SCRIPT), "kstatus"], "kstatus", BUILD_TIMEOUT)


def judge(binary: Path, *objects: Mapping[str, Any]) -> list[tuple[str, str]]:
    """kstatus's (status, message) for each object, in order (one run of the command); a List
    counts as its items."""
    stream = "\n".join(json.dumps(obj) for obj in objects)
    result = subprocess.run(
        [str(binary)], input=stream, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kstatus exited {result.returncode}: {result.stderr.strip()}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    expected = sum(len(o["items"]) if str(o.get("kind", "")).endswith("List") else 1 for o in objects)
    assert len(lines) == expected, result.stdout
    judged = [(str(line["status"]), str(line["message"])) for line in lines]
    assert all(status in STATUSES for status, _ in judged), judged
    return judged
