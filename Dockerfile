# The operator image: `backendauth-operator run` as a non-root user on a read-only root filesystem.
# Builds with the BuildKit built into Docker (DOCKER_BUILDKIT=1), no frontend image to pull.

# The base of both stages. Any Debian-based image with Python 3.11 and its venv module will do:
# the tests build on a stand-in made from Debian packages when no registry can be reached
# (tests/docker/README.md).
ARG BASE_IMAGE=python:3.11-slim

# ---- build: the project's wheel, nothing else ------------------------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# pip runs in a venv (first on PATH once made), so that the base's own Python packages stay as
# they are: a Debian base's system Python is externally managed and refuses pip installs.
ENV PATH=/opt/build/bin:$PATH
# pip itself is upgraded first in each stage, to whatever is current (hence no pin: DL3013).
# hadolint ignore=DL3013
RUN python3 -m venv /opt/build \
 && python -m pip install -U pip \
 && python -m pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime: the wheel and its runtime dependencies (no dev or test extras) --------------------
FROM ${BASE_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# The operator and its dependencies go into a venv of their own, /opt/venv, first on PATH.
ENV PATH=/opt/venv/bin:$PATH
# The wheel is mounted for the install only, so it does not stay in a layer. pip compiles the
# bytecode now: at run time nothing may be written under / (readOnlyRootFilesystem).
# pip is upgraded to whatever is current, as in the build stage (hence no pin: DL3013).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/venv \
 && python -m pip install -U pip \
 && python -m pip install /wheels/*.whl \
 && backendauth-operator --help > /dev/null
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
# A numeric user (the "nonroot" uid of distroless), so that runAsNonRoot can verify it.
USER 65532:65532
# 8080: liveness (/healthz) and readiness (/readyz); 9090: Prometheus metrics.
EXPOSE 8080 9090
ENTRYPOINT ["backendauth-operator", "run"]
CMD ["--liveness=http://0.0.0.0:8080/healthz"]
