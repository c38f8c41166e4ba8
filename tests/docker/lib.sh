# Sourced by the scripts of tests/docker/: shared settings and helpers.
# shellcheck shell=bash

# dockerd and debootstrap are in /usr/sbin, which a PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac

log() { echo "${0##*/}: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# Where the engine's data, the stand-in base's root filesystem and the saved image live.
docker_cache() {
  local dir=${BACKENDAUTH_DOCKER_CACHE:-${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}/docker}
  mkdir -p "$dir"
  echo "$dir"
}

# Debian's docker client (docker.io), which goes with Debian's dockerd: it builds with the
# BuildKit built into the engine (DOCKER_BUILDKIT=1), where a newer client elsewhere on PATH
# (Docker 28's, say) insists on a buildx plugin. $DOCKER overrides. A script calls
# docker_client again once engine.sh has started an engine: on a fresh machine engine.sh has
# only just installed docker.io, and /usr/bin/docker was not there when this file was sourced.
DOCKER_GIVEN=${DOCKER:-}
docker_client() {
  if [[ -n $DOCKER_GIVEN ]]; then
    DOCKER=$DOCKER_GIVEN
  elif [[ -x /usr/bin/docker ]]; then
    DOCKER=/usr/bin/docker
  else
    DOCKER=docker
  fi
  export DOCKER
}
docker_client
export DOCKER_BUILDKIT=1

# apt-get install, non-interactively, updating the package lists once if the package is unknown.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "$@" >&2; }
}
