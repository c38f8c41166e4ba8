"""Run ``deploy/argocd/health.lua`` the way Argo CD does, for tests: ``health(obj) -> (status, message)``.

Argo CD (``util/lua/lua.go``) evaluates a health script in a fresh gopher-lua state (Lua 5.1)
with only the base, table and package libraries and a reduced ``os``; the object is the global
``obj`` (JSON null becomes nil, lists become 1-based tables, numbers are doubles); the chunk's
return value must be a table whose ``status`` is a known health code, otherwise the health is
``Unknown``. This module reproduces that with lupa's Lua 5.1 runtime, so a script that uses the
``string`` library or method calls on strings fails here as it would in Argo CD.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from lupa import lua51 as _lupa
except ImportError:  # a lupa build without Lua 5.1: the default runtime is close enough
    import lupa as _lupa  # type: ignore[no-redef]

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "argocd" / "health.lua"
HEALTH_CODES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
INVALID_STATUS = "Lua returned an invalid health status"  # Argo CD's own message
PENDING_DELETION = "Pending deletion"  # Argo CD's own message

# Leave only what Argo CD opens: base, table, package and a safe os (time, date).
_SANDBOX = """
local safe_os = {time = os.time, date = os.date}
string, math, io, debug, coroutine, utf8 = nil, nil, nil, nil, nil, nil
os = safe_os
getmetatable("").__index = nil
"""


def _to_lua(runtime: Any, value: Any) -> Any:
    """A JSON-like Python value as Argo CD hands it to Lua (nil for null, tables for containers)."""
    if isinstance(value, Mapping):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[str(key)] = _to_lua(runtime, item)
        return table
    if isinstance(value, list | tuple):
        table = runtime.table()
        for index, item in enumerate((i for i in value if i is not None), start=1):
            table[index] = _to_lua(runtime, item)
        return table
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)  # gopher-lua numbers are float64
    raise TypeError(f"not a JSON value: {value!r}")


def health(obj: Mapping[str, Any], script: str | None = None) -> tuple[str, str]:
    """The Argo CD health (status, message) of ``obj`` (a BackendAuth as the API returns it).

    As gitops-engine's ``GetResourceHealth``, an object being deleted is Progressing, "Pending
    deletion", before any health script runs."""
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Progressing", PENDING_DELETION
    runtime = _lupa.LuaRuntime(register_eval=False, register_builtins=False)
    runtime.execute(_SANDBOX)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script if script is not None else SCRIPT.read_text())
    if _lupa.lua_type(result) != "table":
        raise TypeError(f"expect table output from Lua script, not {_lupa.lua_type(result) or type(result)}")
    status, message = result["status"], result["message"]
    if status not in HEALTH_CODES:
        return "Unknown", INVALID_STATUS
    return str(status), "" if message is None else str(message)


CONFIGMAP = SCRIPT.parent / "argocd-cm.yaml"
CONFIGMAP_KEY = "resource.customizations.health.amplifybackend.gitops.dev_BackendAuth"
_CONFIGMAP_HEAD = f"""\
# Argo CD health check for BackendAuth: merge this into the argocd-cm ConfigMap of your Argo CD.
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm.yaml
# or list it under `patches:` of the kustomization that installs Argo CD.
# Generated from deploy/argocd/health.lua by `python tests/argocd_health.py`; do not edit here.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  {CONFIGMAP_KEY}: |
"""


def configmap_text(script: str | None = None) -> str:
    """``argocd-cm.yaml``: the ConfigMap patch carrying ``health.lua`` verbatim."""
    lua = script if script is not None else SCRIPT.read_text()
    return _CONFIGMAP_HEAD + "".join(
        f"    {line}" if line.strip() else line for line in lua.splitlines(keepends=True)
    )


if __name__ == "__main__":
    CONFIGMAP.write_text(configmap_text())
    print(f"wrote {CONFIGMAP}")
