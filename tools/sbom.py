"""Write the image's software bill of materials, CycloneDX 1.6 JSON, to stdout.

    /opt/venv/bin/python tools/sbom.py --version 0.1.0 --revision "$(git rev-parse HEAD)"

Run by the Dockerfile in the final stage, with the venv's Python, so that it lists what the image
holds: every Python distribution of the venv (name, version, ``pkg:pypi`` purl, licence from the
distribution's metadata where it gives one), every Debian package dpkg has installed (name,
version, ``pkg:deb`` purl with architecture and distribution, licence where the package's
machine-readable ``/usr/share/doc/<package>/copyright`` names one for all its files), and the
Python interpreter itself when dpkg did not install it (python:3.11-slim builds its own under
/usr/local). Python standard library only; no timestamp unless SOURCE_DATE_EPOCH is set, and a
serial number derived from the contents, so that the same image contents give the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

SPEC_VERSION = "1.6"
DEP5 = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0"
DPKG_FORMAT = "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"


def purl_part(text: str) -> str:
    """A purl name or version, percent-encoded (an epoch's ':' and a '+' included)."""
    return quote(text, safe=".-_~")


def pypi_name(name: str) -> str:
    """The normalized name of a Python distribution (PEP 503), as purls spell it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_licenses(meta: metadata.PackageMetadata) -> list[dict[str, Any]]:
    """The licence a distribution declares: its SPDX License-Expression, else a one-line License
    field, else its licence classifiers; nothing when it declares none."""
    expression = (meta.get_all("License-Expression") or [""])[0].strip()
    if expression:
        return [{"expression": expression}]
    field = (meta.get_all("License") or [""])[0].strip()
    if field and "\n" not in field and len(field) <= 100 and field.upper() != "UNKNOWN":
        return [{"license": {"name": field}}]
    names = []
    for classifier in meta.get_all("Classifier") or []:
        parts = [part.strip() for part in classifier.split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] != "OSI Approved":
            names.append(parts[-1])
    return [{"license": {"name": name}} for name in dict.fromkeys(names)]


def python_components(site_packages: list[str]) -> list[dict[str, Any]]:
    components = {}
    for dist in metadata.distributions(path=site_packages):
        name, version = dist.metadata["Name"], dist.version
        purl = f"pkg:pypi/{purl_part(pypi_name(name))}@{purl_part(version)}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
        }
        licenses = python_licenses(dist.metadata)
        if licenses:
            component["licenses"] = licenses
        components[purl] = component
    return [components[purl] for purl in sorted(components)]


def os_release() -> dict[str, str]:
    fields = {}
    for path in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key] = value.strip().strip('"')
            break
    return fields


def debian_license(package: str, doc: Path = Path("/usr/share/doc")) -> str | None:
    """The licence of the ``Files: *`` paragraph of a machine-readable copyright file, when it
    is one short name; None for a free-form file, or when there is none."""
    path = doc / package / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    if not text.startswith("Format:") or "copyright-format/1.0" not in text.splitlines()[0]:
        return None
    for paragraph in re.split(r"\n\s*\n", text):
        fields = dict(
            (match.group(1).lower(), match.group(2).strip())
            for match in re.finditer(r"^([A-Za-z-]+):[ \t]*(.*)$", paragraph, re.M)
        )
        if fields.get("files", "").split() == ["*"]:
            name = fields.get("license", "")
            return name if name and len(name) <= 100 else None
    return None


def debian_components(distro: str) -> list[dict[str, Any]]:
    try:
        listing = subprocess.run(
            ["dpkg-query", "-W", f"-f={DPKG_FORMAT}"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []  # not a dpkg-based image
    components = {}
    for line in listing.splitlines():
        status, name, version, arch = line.split("\t")
        if not status.startswith("ii"):
            continue  # removed, config files only, half installed
        qualifiers = f"arch={arch}" + (f"&distro={distro}" if distro else "")
        purl = f"pkg:deb/debian/{purl_part(name)}@{purl_part(version)}?{qualifiers}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
        }
        licence = debian_license(name)
        if licence:
            component["licenses"] = [{"license": {"name": licence}}]
        components[purl] = component
    return [components[purl] for purl in sorted(components)]


def interpreter_component() -> list[dict[str, Any]]:
    """CPython itself, unless a Debian package installed it (then dpkg's listing has it)."""
    executable = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    try:
        owned = subprocess.run(["dpkg-query", "-S", executable], capture_output=True, check=False)
        if owned.returncode == 0:
            return []
    except OSError:
        pass
    version = platform.python_version()
    purl = f"pkg:generic/python@{version}"
    return [
        {
            "type": "application",
            "bom-ref": purl,
            "name": "python",
            "version": version,
            "purl": purl,
            "licenses": [{"license": {"id": "PSF-2.0"}}],
            "properties": [{"name": "path", "value": executable}],
        }
    ]


def bom(name: str, version: str, revision: str, source: str) -> dict[str, Any]:
    release = os_release()
    distro = f"{release['ID']}-{release['VERSION_ID']}" if "ID" in release and "VERSION_ID" in release else ""
    site_packages = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    components = python_components(list(dict.fromkeys(site_packages)))
    components += interpreter_component()
    if release.get("ID"):
        components.append(
            {
                "type": "operating-system",
                "bom-ref": f"os:{distro or release['ID']}",
                "name": release["ID"],
                "version": release.get("VERSION_ID", ""),
                "description": release.get("PRETTY_NAME", ""),
            }
        )
    components += debian_components(distro)
    image: dict[str, Any] = {"type": "container", "bom-ref": "image", "name": name, "version": version}
    properties = [{"name": "org.opencontainers.image.revision", "value": revision}]
    if source:
        properties.append({"name": "org.opencontainers.image.source", "value": source})
    image["properties"] = properties
    serial = uuid.uuid5(uuid.NAMESPACE_URL, json.dumps([image, components], sort_keys=True))
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "tools/sbom.py", "group": name}]},
            "component": image,
        },
        "components": components,
    }
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        stamp = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        document["metadata"] = {"timestamp": stamp, **document["metadata"]}
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the image's CycloneDX SBOM to stdout.")
    parser.add_argument("--name", default="backendauth-operator")
    parser.add_argument("--version", required=True)
    parser.add_argument("--revision", default="unknown")
    parser.add_argument("--source", default="")
    args = parser.parse_args(argv)
    json.dump(bom(args.name, args.version, args.revision, args.source), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
