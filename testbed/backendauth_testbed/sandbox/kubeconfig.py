"""A kubeconfig for the emulated API: plain HTTP on 127.0.0.1, no credentials."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "backendauth-dev"


def kubeconfig(server: str, namespace: str = "default") -> dict[str, object]:
    """The kubeconfig document: cluster, user and context all named ``backendauth-dev``."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: str | os.PathLike[str], server: str, namespace: str = "default") -> Path:
    """Write the kubeconfig to ``path`` (creating its directory); return the absolute path."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(kubeconfig(server, namespace), sort_keys=False), encoding="utf-8")
    return target
