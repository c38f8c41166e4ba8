"""Type-check an Amplify Gen 2 ``amplify/auth/resource.ts`` as a Gen 2 project would.

``gen2_packages()`` installs (once, ``tests/tools/npm.sh gen2``) the pinned ``typescript`` and
``@aws-amplify/backend`` with its peers ``aws-cdk-lib`` and ``constructs``, and returns the
directory that holds their ``node_modules``. Without npm, or when the install fails, the test is
skipped with the reason; under ``CI=true`` it fails.

``typecheck(resource_ts, packages)`` lays out a scratch Gen 2 backend (``amplify/package.json``
with ``"type": "module"``, the compiler options of a Gen 2 ``amplify/tsconfig.json``, the file as
``amplify/auth/resource.ts`` and a ``backend.ts`` that passes it to ``defineBackend``, so that the
factory is also checked where Gen 2 uses it) and runs ``tsc --strict --noEmit`` once for each
module setting Gen 2 projects use: ``bundler`` (the quickstart templates) and ``node16``
(``npm create amplify``). It returns tsc's diagnostics, one string per line of them; an empty
list means the file compiles. ``typecheck_many`` checks several files in one compilation.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from tools.built import built_tool

HERE = Path(__file__).resolve().parent
NPM_SCRIPT = HERE / "npm.sh"
INSTALL_TIMEOUT = 1800  # a cold install on a busy 2-core machine takes 2-3 minutes
TSC_TIMEOUT = 300

# The compiler options of a Gen 2 backend's amplify/tsconfig.json. "bundler" is the quickstart
# templates' (module es2022); create-amplify runs `tsc --init` with node16 and an ES module
# package.json. strict and noEmit are passed on the command line as well.
BASE_OPTIONS: dict[str, object] = {
    "target": "es2022",
    "resolveJsonModule": True,
    "esModuleInterop": True,
    "forceConsistentCasingInFileNames": True,
    "strict": True,
    "skipLibCheck": True,
}
MODULE_SETTINGS: dict[str, dict[str, str]] = {
    "bundler": {"module": "es2022", "moduleResolution": "bundler"},
    "node16": {"module": "node16", "moduleResolution": "node16"},
}

BACKEND_TS = """import { defineBackend } from '@aws-amplify/backend';
import { auth } from './auth/resource.js';

defineBackend({ auth });
"""


def gen2_packages() -> Path:
    """The directory whose ``node_modules`` has tsc and @aws-amplify/backend (skip or fail without)."""
    tsc = built_tool(["bash", str(NPM_SCRIPT), "gen2"], "node_modules/.bin/tsc", INSTALL_TIMEOUT)
    return tsc.parents[2]


def typecheck(resource_ts: str | Path, packages: Path) -> list[str]:
    """tsc's diagnostics for one ``resource_ts`` (its text, or a path to it), under each module setting."""
    return typecheck_many({"app": resource_ts}, packages)["app"]


def typecheck_many(files: dict[str, str | Path], packages: Path) -> dict[str, list[str]]:
    """tsc's diagnostics for each of several ``amplify/auth/resource.ts`` (name → its text or a path
    to it), in one compilation per module setting: each is a backend of its own in a folder named
    after it, and loading the ~7,000 declaration files of aws-cdk-lib once is most of tsc's time.
    A diagnostic's path is relative to that backend's folder (``amplify/auth/resource.ts(3,3): ...``),
    prefixed with the module setting (``[bundler]``, ``[node16]``)."""
    for name in files:
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
            raise ValueError(f"{name!r} is not a plain folder name")
    diagnostics: dict[str, list[str]] = {name: [] for name in files}
    with tempfile.TemporaryDirectory(prefix="backendauth-gen2-tsc-") as scratch:
        root = Path(scratch)
        (root / "node_modules").symlink_to(packages / "node_modules", target_is_directory=True)
        for name, source in files.items():
            text = source.read_text() if isinstance(source, Path) else source
            amplify = root / name / "amplify"
            (amplify / "auth").mkdir(parents=True)
            (amplify / "package.json").write_text(json.dumps({"type": "module"}))
            (amplify / "auth" / "resource.ts").write_text(text)
            (amplify / "backend.ts").write_text(BACKEND_TS)
        for setting, module in MODULE_SETTINGS.items():
            config = {"compilerOptions": {**BASE_OPTIONS, **module}, "include": ["./*/amplify/**/*.ts"]}
            (root / "tsconfig.json").write_text(json.dumps(config, indent=2))
            result = subprocess.run(
                [str(packages / "node_modules" / ".bin" / "tsc"), "-p", str(root / "tsconfig.json"),
                 "--strict", "--noEmit", "--pretty", "false"],
                cwd=root, capture_output=True, text=True, timeout=TSC_TIMEOUT, check=False,
            )  # fmt: skip
            lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
            unplaced: list[str] = []
            current: str | None = None
            for line in lines:
                line = line.replace(str(root) + "/", "")
                head = line.split("/", 1)[0]
                if head in diagnostics and not line.startswith(" "):
                    current = head
                    line = line[len(head) + 1 :]
                elif not line.startswith(" "):
                    current = None  # a diagnostic of no backend (the tsconfig, a library)
                (diagnostics[current] if current else unplaced).append(f"[{setting}] {line}")
            if result.returncode != 0 and not any(diagnostics.values()) and not unplaced:
                unplaced.append(f"[{setting}] tsc exited {result.returncode} without a diagnostic")
            for name in diagnostics:  # what belongs to no one file makes every file fail
                diagnostics[name] += unplaced
    return diagnostics
