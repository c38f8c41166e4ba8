"""What the operator's image holds, against ``uv.lock``: the Python distributions of its venv are
exactly the lock's runtime set for the operator, version for version (and nothing else: no pip,
no setuptools, no uv, no test bed); its CycloneDX SBOM lists each of them at that version and
every Debian package dpkg has installed; its OCI labels say the commit and version it was built
from (``tests/docker/image.sh`` passes them).

The image comes from the ``docker_image`` plugin (``tests/docker/image.sh``); without Docker the
tests are skipped, except under ``CI=true``, where they fail. The lock's runtime set comes from
``uv export`` (uv from PATH, as ``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker

from docker_image import OperatorImage
from test_lock import OPERATOR, normalized, uv

pytestmark = [pytest.mark.image]

REPO = Path(__file__).resolve().parent.parent
SBOM = "/usr/share/doc/backendauth-operator/sbom.cdx.json"

# Run inside the image by the venv's Python: its distributions and its marker environment.
LIST = """
import json, os, platform, sys
from importlib import metadata
print(json.dumps({
    "distributions": sorted([d.metadata["Name"], d.version] for d in metadata.distributions()),
    "environment": {
        "implementation_name": sys.implementation.name, "os_name": os.name,
        "platform_machine": platform.machine(), "platform_python_implementation":
        platform.python_implementation(), "platform_release": platform.release(),
        "platform_system": platform.system(), "platform_version": platform.version(),
        "python_full_version": platform.python_version(), "python_version":
        ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
        "implementation_version": platform.python_version(),
    },
    "prefix": sys.prefix,
}))
"""


def in_image(image: OperatorImage, entrypoint: str, *args: str) -> str:
    """``entrypoint args`` in a container of the image, as the Deployment runs it: its own user,
    a read-only root filesystem, no network."""
    result = image.docker(
        "run", "--rm", "--read-only", "--network=none", "--entrypoint", entrypoint, image.tag, *args,
        timeout=120,
    )  # fmt: skip
    return result.stdout


@pytest.fixture(scope="module")
def contents(operator_image: OperatorImage) -> dict[str, Any]:
    listing: dict[str, Any] = json.loads(in_image(operator_image, "python", "-c", LIST))
    return listing


@pytest.fixture(scope="module")
def sbom(operator_image: OperatorImage) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(in_image(operator_image, "cat", SBOM))
    return document


def locked_runtime_set(environment: dict[str, str]) -> dict[str, str]:
    """The operator's runtime dependencies as uv.lock pins them, for the image's platform."""
    result = uv(
        "export", "--frozen", "--no-dev", "--no-emit-workspace", "--package", OPERATOR,
        "--format", "requirements-txt", "--no-hashes", "--no-header", "--no-annotate",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pins = {}
    for line in result.stdout.splitlines():
        requirement, _, marker = line.partition(";")
        if "==" not in requirement or (marker.strip() and not Marker(marker).evaluate(environment)):
            continue
        name, version = requirement.split("==")
        pins[normalized(name)] = version.strip()
    return pins


def test_the_venv_holds_exactly_the_locked_runtime_set(contents: dict[str, Any]) -> None:
    assert contents["prefix"] == "/opt/venv"
    installed = {normalized(name): version for name, version in contents["distributions"]}
    expected = locked_runtime_set(contents["environment"])
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected[OPERATOR] = project["version"]
    assert installed == expected
    assert len(installed) == len(contents["distributions"]), "a distribution is installed twice"


def test_the_venv_has_no_installer(operator_image: OperatorImage) -> None:
    listing = in_image(operator_image, "ls", "/opt/venv/bin").split()
    assert "python" in listing and "backendauth-operator" in listing
    assert not [name for name in listing if name.startswith(("pip", "uv", "easy_install"))], listing


def test_the_sbom_lists_every_distribution_of_the_venv_at_its_version(
    contents: dict[str, Any], sbom: dict[str, Any]
) -> None:
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] in ("1.5", "1.6")
    python = {c["purl"]: c for c in sbom["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    expected = {f"pkg:pypi/{normalized(name)}@{version}" for name, version in contents["distributions"]}
    assert set(python) == expected
    for purl, component in python.items():
        assert component["bom-ref"] == purl and component["type"] == "library"
        assert purl.endswith(f"/{normalized(component['name'])}@{component['version']}")
    # Licences from the metadata, where it has them.
    assert python[f"pkg:pypi/kopf@{dict(contents['distributions'])['kopf']}"]["licenses"]
    assert python[f"pkg:pypi/{OPERATOR}@{dict(contents['distributions'])[OPERATOR]}"]["licenses"] == [
        {"expression": "Apache-2.0"}
    ]


def test_the_sbom_lists_every_debian_package_of_the_image(
    operator_image: OperatorImage, sbom: dict[str, Any]
) -> None:
    listing = in_image(operator_image, "dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package} ${Version}\n")
    installed = {tuple(line.split()[1:]) for line in listing.splitlines() if line.startswith("ii")}
    assert len(installed) > 20, listing
    debian = [c for c in sbom["components"] if c.get("purl", "").startswith("pkg:deb/debian/")]
    assert {(c["name"], c["version"]) for c in debian} == installed
    for component in debian:
        assert re.fullmatch(r"pkg:deb/debian/[^@]+@[^?]+\?arch=[\w-]+&distro=debian-\d+", component["purl"])
    # Licences where the copyright file says them simply (most of Debian's do, not all).
    assert sum("licenses" in c for c in debian) > len(debian) // 3
    (release,) = [c for c in sbom["components"] if c["type"] == "operating-system"]
    assert release["name"] == "debian"


def build_revision() -> str:
    """The revision tests/docker/image.sh passes for this checkout."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    clean = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--"], check=False)
    return head.stdout.strip() + ("" if clean.returncode == 0 else "-dirty")


def test_the_labels_say_where_the_image_comes_from(
    operator_image: OperatorImage, sbom: dict[str, Any]
) -> None:
    inspect = operator_image.docker(
        "image", "inspect", "--format", "{{json .Config.Labels}}", operator_image.tag
    )
    labels: dict[str, str] = json.loads(inspect.stdout)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.revision"] == build_revision()
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.source"]
    # The SBOM names the same image.
    image = sbom["metadata"]["component"]
    assert image["type"] == "container" and image["version"] == project["version"]
    properties = {p["name"]: p["value"] for p in image["properties"]}
    assert properties["org.opencontainers.image.revision"] == labels["org.opencontainers.image.revision"]
