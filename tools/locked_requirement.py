"""Print a pip requirements file, hashes included, for packages named on the command line, at the
versions ``uv.lock`` pins: the image's build stage installs uv (and setuptools, to build the
operator's wheel) this way before uv can read the lock itself.

    python3 tools/locked_requirement.py [--lock uv.lock] uv setuptools

Only packages without dependencies of their own are accepted (what is named is exactly what gets
installed, with ``pip install --require-hashes --no-deps --only-binary :all:``). Python standard
library only: it runs on the base image's Python before anything is installed.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def requirement(lock: dict[str, object], name: str) -> str:
    packages = lock.get("package")
    assert isinstance(packages, list)
    found = [p for p in packages if isinstance(p, dict) and p.get("name") == name]
    if len(found) != 1:
        raise SystemExit(f"locked_requirement: {name}: {len(found)} entries in the lock, expected 1")
    (package,) = found
    if package.get("dependencies"):
        raise SystemExit(f"locked_requirement: {name} has dependencies; export it with uv instead")
    hashes = [str(wheel["hash"]) for wheel in package.get("wheels", [])]
    if not hashes:
        raise SystemExit(f"locked_requirement: {name} has no wheels in the lock")
    lines = [f"{name}=={package['version']}", *(f"    --hash={h}" for h in hashes)]
    return " \\\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lock", type=Path, default=Path("uv.lock"))
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    lock = tomllib.loads(args.lock.read_text())
    for name in args.names:
        print(requirement(lock, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
