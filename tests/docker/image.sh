#!/usr/bin/env bash
# Builds the operator image from the repository's Dockerfile as backendauth-operator:test and
# saves it with `docker save`; the last stdout line is the path of that tar:
#
#   tar=$(bash tests/docker/image.sh | tail -1)
#
# The engine comes from engine.sh (a dockerd of our own when none answers, stopped again at the
# end if this script started it); the base from base.sh (python:3.11-slim, or a stand-in made
# from Debian packages when no registry can be reached). The build uses the host's network
# (--network host: this dockerd makes no bridge). It passes the OCI labels' build arguments: the
# checkout's commit (REVISION, `git rev-parse HEAD`, with "-dirty" when the work tree differs),
# the project's version (VERSION, from pyproject.toml) and the origin remote, if any (SOURCE).
# The tar is
#   <docker cache>/backendauth-operator-test-<image id>.tar
# written again only when the image id changes (older ones are removed). Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"

TAG=backendauth-operator:test
cache=$(docker_cache)

read -r host pid < <(bash "$here/engine.sh" start | tail -1)
[[ -n ${pid:-} ]] || die "engine.sh start printed no engine"
trap 'bash "$here/engine.sh" stop "$pid"' EXIT
export DOCKER_HOST=$host
docker_client # Debian's client, now that engine.sh may have installed it

base=$(bash "$here/base.sh" | tail -1)
[[ -n $base ]] || die "base.sh printed no base image"

revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && ! git -C "$repo" diff --quiet HEAD -- 2>/dev/null; then
  revision=$revision-dirty
fi
version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$repo/pyproject.toml")
# Without any user name or token a URL may carry.
source_url=$(git -C "$repo" config --get remote.origin.url 2>/dev/null | sed -E 's#//[^/@]*@#//#' || true)
source_url=${source_url:-unknown}

log "building $TAG ($version, $revision) from $repo/Dockerfile on $base"
start=$SECONDS
previous=$("$DOCKER" image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
"$DOCKER" build --network host --build-arg "BASE_IMAGE=$base" --build-arg "REVISION=$revision" \
  --build-arg "VERSION=$version" --build-arg "SOURCE=$source_url" -t "$TAG" "$repo" >&2
id=$("$DOCKER" image inspect --format '{{.Id}}' "$TAG")
# The image the tag named before, now untagged, would pile up in the data root with each change.
if [[ -n $previous && $previous != "$id" ]]; then
  "$DOCKER" image rm "$previous" >/dev/null 2>&1 || true # still used by a container: kept
fi
id=${id#sha256:}
log "built $TAG (${id:0:12}) in $((SECONDS - start)) s"

tar=$cache/backendauth-operator-test-${id:0:12}.tar
exec 7>"$cache/image.lock"
flock 7
if [[ ! -s $tar ]]; then
  "$DOCKER" save -o "$tar.tmp" "$TAG"
  mv "$tar.tmp" "$tar"
  log "saved $TAG to $tar"
fi
for old in "$cache"/backendauth-operator-test-*.tar; do
  [[ $old == "$tar" ]] || rm -f "$old"
done
echo "$tar"
