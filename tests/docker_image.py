"""The operator's image, built from the Dockerfile, for tests marked ``image``.

A pytest plugin (``conftest.py`` loads it). When the collected tests include one marked
``image``, before the first test starts (a cold build takes minutes, which must not count
against a test's timeout), it gets a Docker engine with ``tests/docker/engine.sh`` (the one that
answers, or a dockerd of its own: Debian's docker.io is installed if missing), the base image
with ``tests/docker/base.sh`` (python:3.11-slim, or a stand-in made from Debian packages when no
registry answers) and builds ``backendauth-operator:test`` with ``tests/docker/image.sh``. The
scripts' stderr goes to a log file. A dockerd started here is stopped at the end of the session,
by its pid.

Fixture ``operator_image`` (session): the :class:`OperatorImage`, the tag and the engine to run it on.

Without an engine (nothing answers and Docker is not installed, or cannot be started) or a base
image, the tests are skipped with the reason, except under ``CI=true``, where they fail with the
end of the log. A failed build of the image fails them everywhere.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from real_apiserver import build_before_tests, in_ci, tail

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "tests" / "docker"
MARKER = "image"
TAG = "backendauth-operator:test"


def docker_client() -> str:
    """As tests/docker/lib.sh: ``$DOCKER``, else Debian's client, else ``docker`` on PATH."""
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"


@dataclass
class OperatorImage:
    """The built image and the engine that has it."""

    tag: str
    docker_host: str
    tar: Path

    def docker(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The docker client against this engine."""
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        result = subprocess.run(
            [docker_client(), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


@dataclass
class Build:
    """The outcome of the scripts in this session."""

    log: Path
    image: OperatorImage | None = None
    problem: str | None = None
    fatal: bool = False  # a failure everywhere, not only under CI=true
    engine_pid: int = 0  # the dockerd started for this session (0: none, or not ours)


_build: Build | None = None


def _script(name: str, *args: str, log: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run tests/docker/``name``; its last stdout line (stderr to ``log``)."""
    with log.open("ab") as stderr:
        stderr.write(f"---- {name} {' '.join(args)} ----\n".encode())
        stderr.flush()
        result = subprocess.run(
            ["bash", str(SCRIPTS / name), *args], stdout=subprocess.PIPE, stderr=stderr,
            env={**os.environ, **(env or {})}, timeout=timeout, check=False,
        )  # fmt: skip
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"tests/docker/{name} exited {result.returncode}: {tail(log, 1)} (log: {log})")
    return lines[-1]


def docker_installed() -> bool:
    """An engine may answer, or can be started without installing anything."""
    return bool(
        os.environ.get("DOCKER_HOST")
        or Path("/var/run/docker.sock").exists()
        or shutil.which("dockerd")
        or os.access("/usr/sbin/dockerd", os.X_OK)  # a PATH without sbin (as engine.sh looks)
    )


def build_image() -> Build:
    """Engine, base and image, once per session."""
    global _build
    if _build is not None:
        return _build
    log_dir = tempfile.mkdtemp(prefix="backendauth-image-build-")
    build = _build = Build(Path(log_dir) / "build.log")
    # Outside CI, Docker is not installed for the tests' sake (under CI=true engine.sh does it).
    if not in_ci() and not docker_installed():
        build.problem = "no Docker engine answers and Docker is not installed (apt-get install docker.io)"
        return build
    try:
        host, pid = _script("engine.sh", "start", log=build.log, timeout=900).split()
        build.engine_pid = int(pid)
        env = {"DOCKER_HOST": host}
        _script("base.sh", log=build.log, timeout=1800, env=env)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        build.problem = f"no Docker engine or base image: {error}"
        return build
    try:
        tar = _script("image.sh", log=build.log, timeout=1800, env=env)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        build.problem, build.fatal = f"the image did not build: {error}", True
        return build
    build.image = OperatorImage(TAG, host, Path(tar))
    atexit.register(shutil.rmtree, log_dir, True)  # kept only when something failed
    return build


def stop_engine() -> None:
    """Stop the dockerd this session started, if any (by the pid engine.sh recorded)."""
    if _build is not None and _build.engine_pid:
        pid, _build.engine_pid = _build.engine_pid, 0
        with _build.log.open("ab") as stderr:
            subprocess.run(
                ["bash", str(SCRIPTS / "engine.sh"), "stop", str(pid)],
                stderr=stderr,
                timeout=120,
                check=False,
            )


atexit.register(stop_engine)  # also when the session ends without pytest_sessionfinish


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the image before any test runs, if a selected test needs it."""

    def build() -> str:
        built = build_image()
        return built.image.tag if built.image else f"unavailable: {built.problem}"

    build_before_tests(
        session, MARKER, "tests/docker/image.sh (a cold engine, base and build take minutes)", build
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_engine()


def unavailable(build: Build) -> NoReturn:
    """Skip, or under CI=true (or when the build itself failed) fail, with the reason."""
    reason = build.problem or "the image was not built"
    if build.fatal or in_ci():
        pytest.fail(f"the operator image is required{' under CI=true' if in_ci() else ''}: {reason}\n"
                    f"{tail(build.log)}")  # fmt: skip
    pytest.skip(f"operator image unavailable: {reason}")


@pytest.fixture(scope="session")
def operator_image() -> OperatorImage:
    """``backendauth-operator:test`` built from the Dockerfile, on an engine that answers."""
    build = build_image()
    if build.image is None:
        unavailable(build)
    return build.image
