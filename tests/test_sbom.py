"""tools/sbom.py, the writer of the image's CycloneDX SBOM, on tables: purls, licences from
Python metadata and from Debian copyright files, and a document for this venv. What the image's
SBOM holds is tests/test_image_contents.py's."""

from __future__ import annotations

import importlib.util
import json
import sys
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest

REPO = Path(__file__).resolve().parent.parent


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sbom = load("sbom")


@pytest.mark.parametrize(
    ("text", "encoded"),
    [("1:1.2.13.dfsg-1", "1%3A1.2.13.dfsg-1"), ("2.36-9+deb12u14", "2.36-9%2Bdeb12u14"), ("6.0.4", "6.0.4")],
)
def test_purl_versions_are_percent_encoded(text: str, encoded: str) -> None:
    assert sbom.purl_part(text) == encoded


def test_python_names_are_normalized() -> None:
    assert sbom.pypi_name("Pydantic_Settings") == "pydantic-settings"
    assert sbom.pypi_name("zope.interface") == "zope-interface"


def metadata(**fields: str | list[str]) -> Message:
    message = Message()
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            message[key.replace("_", "-")] = item
    return message


@pytest.mark.parametrize(
    ("fields", "licenses"),
    [
        ({"License_Expression": "MIT OR 0BSD", "License": "MIT"}, [{"expression": "MIT OR 0BSD"}]),
        ({"License": "BSD-3-Clause"}, [{"license": {"name": "BSD-3-Clause"}}]),
        (
            {"License": "Copyright (c) ...\nPermission is hereby granted", "Classifier": [
                "License :: OSI Approved :: MIT License", "Programming Language :: Python"]},
            [{"license": {"name": "MIT License"}}],
        ),
        ({"License": "UNKNOWN"}, []),
        ({}, []),
    ],
)  # fmt: skip
def test_python_licences_prefer_the_expression_then_a_short_field_then_classifiers(
    fields: dict[str, Any], licenses: list[dict[str, Any]]
) -> None:
    assert sbom.python_licenses(metadata(**fields)) == licenses


DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"


@pytest.mark.parametrize(
    ("text", "licence"),
    [
        (DEP5 + "Upstream-Name: zlib\n\nFiles: *\nCopyright: 1995 Jean-loup\nLicense: Zlib\n", "Zlib"),
        (DEP5 + "\nFiles: debian/*\nLicense: GPL-2+\n\nFiles: *\nLicense: GPL-3+\n text\n", "GPL-3+"),
        (DEP5 + "\nFiles: src/*\nLicense: MIT\n", None),  # no paragraph for all files
        ("This package was debianized by someone.\nIt is GPL.\n", None),  # free-form
    ],
)
def test_a_debian_licence_is_taken_only_when_the_copyright_file_says_it_simply(
    tmp_path: Path, text: str, licence: str | None
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "copyright").write_text(text)
    assert sbom.debian_license("pkg", doc=tmp_path) == licence
    assert sbom.debian_license("absent", doc=tmp_path) is None


def test_the_document_lists_this_venvs_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert sbom.main(["--version", "9.9.9", "--revision", "abc"]) == 0
    document = cast(dict[str, Any], json.loads(capsys.readouterr().out))
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["version"] == "9.9.9"
    assert {"name": "org.opencontainers.image.revision", "value": "abc"} in document["metadata"]["component"][
        "properties"
    ]
    purls = {c["purl"] for c in document["components"] if "purl" in c}
    from importlib import metadata as md

    pytest_purl = f"pkg:pypi/pytest@{md.version('pytest')}"
    assert pytest_purl in purls
    refs = [c["bom-ref"] for c in document["components"]]
    assert len(refs) == len(set(refs))
