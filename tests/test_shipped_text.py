"""What users install and read never points at documents they do not have."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["crds", "deploy", "operator", "examples", "charts", "README.md", "Dockerfile"]
INTERNAL = re.compile(r"CONTRACT\s*§|research\s*§|shared/research|\.\./shared|CONTRACT\.md")


def test_nothing_shipped_cites_an_internal_document() -> None:
    found = []
    for top in SHIPPED:
        path = REPO / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if file.suffix in (".pyc",) or "__pycache__" in file.parts:
                continue
            for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
                if INTERNAL.search(line):
                    found.append(f"{file.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
