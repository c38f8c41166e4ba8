# syntax=docker/dockerfile:1
# The operator image: `backendauth-operator run` as a non-root user on a read-only root filesystem.
# The same image runs the AmplifyBackend simulator (`backendauth-operator simulator`) for kind e2e.

# ---- build: the project's wheel, nothing else ------------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# pip itself is upgraded first in each stage, to whatever is current (hence no pin: DL3013).
# hadolint ignore=DL3013
RUN python -m pip install -U pip \
 && python -m pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime: the wheel and its runtime dependencies (no dev or test extras) --------------------
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# The wheel is mounted for the install only, so it does not stay in a layer. pip compiles the
# bytecode now: at run time nothing may be written under / (readOnlyRootFilesystem).
# pip is upgraded to whatever is current, as in the build stage (hence no pin: DL3013).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install -U pip \
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
