# The operator image: `backendauth-operator run` as a non-root user on a read-only root filesystem.
# Builds with the BuildKit built into Docker (DOCKER_BUILDKIT=1), no frontend image to pull.
#
# What it holds is what uv.lock pins: the runtime dependencies at the locked versions, every file
# checked against the lock's hashes, in a venv made without pip; nothing is upgraded to "whatever
# is current". /usr/share/doc/backendauth-operator/sbom.cdx.json lists it all (CycloneDX), and
# the OCI labels say where it comes from (docs/how-to/verify-image.md).
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t backendauth-operator .

# The base of both stages. Any Debian-based image with Python 3.11 and its venv module will do:
# the tests build on a stand-in made from Debian packages when no registry can be reached
# (tests/docker/README.md).
ARG BASE_IMAGE=python:3.11-slim

# ---- build: uv from the lock, the operator's wheel, and the venv ------------------------------
FROM ${BASE_IMAGE} AS build
# uv trusts the base's CA store, as pip does (a proxy the base trusts works for both).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 \
    UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY tools ./tools
COPY operator ./operator
# uv and setuptools at the versions and hashes uv.lock has for them, installed by the base's own
# pip (not upgraded) into a venv of this stage only; no dependency of theirs is installed.
# The operator's wheel is built from the checkout offline, with that setuptools.
RUN python3 tools/locked_requirement.py uv setuptools > /tmp/tools.txt \
 && python3 -m venv /opt/tools \
 && /opt/tools/bin/python -m pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/tools.txt \
 && /opt/tools/bin/python -m pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels .
# The runtime venv, made without pip: the operator's locked runtime dependencies (exported from
# uv.lock with their hashes; uv refuses any file whose hash is not there), as wheels only (building
# a source distribution would take build dependencies the lock does not pin), then the
# operator's wheel alone. The bytecode is compiled now: at run time nothing may be written under /.
RUN /opt/tools/bin/uv export --frozen --no-dev --no-emit-workspace --package amplify-backendauth-operator \
      --format requirements-txt --output-file /tmp/requirements.txt \
 && python3 -m venv --without-pip /opt/venv \
 && /opt/tools/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps --no-build \
      --compile-bytecode -r /tmp/requirements.txt \
 && /opt/tools/bin/uv pip install --python /opt/venv/bin/python --no-deps --compile-bytecode /wheels/*.whl

# ---- runtime: the venv, its SBOM, and nothing else ---------------------------------------------
FROM ${BASE_IMAGE}
# The operator and its dependencies are in a venv of their own, /opt/venv, first on PATH.
ENV PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
# Where the image comes from: the commit and the version are passed at build time
# (tests/docker/image.sh passes `git rev-parse HEAD` and the project's version).
ARG SOURCE=unknown
ARG REVISION=unknown
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="backendauth-operator" \
      org.opencontainers.image.description="Manages AWS Amplify backend authentication (BackendAuth) declaratively, from Git." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The SBOM of this stage as it is (the venv, the base's Debian packages and Python), written
# by tools/sbom.py, which is mounted for the step only; then the operator must start.
RUN --mount=type=bind,source=tools/sbom.py,target=/run/sbom.py \
    mkdir -p /usr/share/doc/backendauth-operator \
 && python /run/sbom.py --version "${VERSION}" --revision "${REVISION}" --source "${SOURCE}" \
      > /usr/share/doc/backendauth-operator/sbom.cdx.json \
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
