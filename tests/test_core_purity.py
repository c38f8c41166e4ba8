"""The pure core (``core/``: the decision, its types, the spec models, the import variant)
imports no I/O library (no client, no framework, no metrics).

Each check runs in a fresh interpreter: in this one, other tests have long loaded everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

IO_LIBRARIES = ("boto3", "botocore", "kubernetes", "kopf", "aiohttp", "prometheus_client", "urllib3")
CORE = Path(__file__).resolve().parent.parent / "operator" / "backendauth_operator" / "core"
# Every module of the core: one added there is checked without being listed.
PURE_MODULES = (
    "backendauth_operator.core",
    *(f"backendauth_operator.core.{p.stem}" for p in sorted(CORE.glob("*.py")) if p.stem != "__init__"),
)


def loaded_after_import(module: str) -> list[str]:
    """The top-level names of every module loaded by importing ``module`` in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({name.partition('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names: list[str] = json.loads(done.stdout)
    return names


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_core_loads_no_io_library(module: str) -> None:
    loaded = loaded_after_import(module)
    assert "backendauth_operator" in loaded  # the probe saw the import
    assert [name for name in IO_LIBRARIES if name in loaded] == []


def test_the_probe_sees_an_io_library_when_one_is_loaded() -> None:
    # The check above could pass by never seeing anything: the AWS edge loads boto3 and botocore.
    loaded = loaded_after_import("backendauth_operator.aws.clients")
    assert {"boto3", "botocore"} <= set(loaded)


def test_the_decisions_types_are_the_ones_the_edges_use() -> None:
    # One type each, not a copy: what the AWS edge classifies is what the decision reads.
    import botocore.exceptions

    from backendauth_operator.aws import clients
    from backendauth_operator.core.failure import Failure
    from backendauth_operator.core.role import Role
    from backendauth_operator.kube import accounts

    failure = clients.classify(botocore.exceptions.NoCredentialsError())
    assert type(failure) is Failure and failure.reason == "AccessDenied"
    role = accounts.parse_role("ops/map", "111111111111", "arn:aws:iam::111111111111:role/operator")
    assert type(role) is Role and role.account == "111111111111"
