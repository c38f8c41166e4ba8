#!/usr/bin/env bash
# The base image for the Dockerfile's BASE_IMAGE: the last stdout line is the image to build FROM.
#
#   DOCKER_HOST=... bash tests/docker/base.sh
#
# $BACKENDAUTH_BASE_IMAGE if set (pulled when missing). Otherwise python:3.11-slim, the real
# base, when the engine has it or can pull it. Otherwise (no registry) a stand-in made from
# Debian packages: `debootstrap --variant=minbase bookworm` (Debian 12, the Debian of
# python:3.11-slim, whose Python is 3.11 too) with python3, python3-venv and python3-pip,
# loaded with `docker import`. Its python is Debian's /usr/bin/python3, not a build of its own
# under /usr/local as in the real image, which is why the Dockerfile installs into a venv.
#
# The stand-in trusts the CA certificates pip on this machine trusts (the build's pip reaches
# PyPI from it), and uses the Debian mirror apt uses here. Its root filesystem is cached as
# standin-<key>.tar.gz in the docker cache (engine.sh), keyed by this script, the mirror and
# those certificates; the image is tagged backendauth-operator-base:bookworm-<key>.
# debootstrap runs as root (installed with apt-get when missing). Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"

REAL=python:3.11-slim
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates

present() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

if [[ -n ${BACKENDAUTH_BASE_IMAGE:-} ]]; then
  present "$BACKENDAUTH_BASE_IMAGE" || "$DOCKER" pull "$BACKENDAUTH_BASE_IMAGE" >&2
  echo "$BACKENDAUTH_BASE_IMAGE"
  exit 0
fi
if present "$REAL" || timeout 300 "$DOCKER" pull "$REAL" >&2 2>/dev/null; then
  echo "$REAL"
  exit 0
fi
log "$REAL cannot be pulled (no registry): using a stand-in built from Debian packages"

# The Debian mirror apt uses for $SUITE (one-line or deb822 sources), else deb.debian.org.
debian_mirror() {
  local file found
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $file ]] || continue
    found=$(awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit } }' "$file")
    [[ -z $found ]] || { echo "$found"; return 0; }
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    # Blocks are separated by blank lines; the first URI of a block whose Suites include $SUITE.
    found=$(awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
      uri = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
        if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
      }
      if (ok && uri != "") { print uri; exit } }' "$file")
    [[ -z $found ]] || { echo "$found"; return 0; }
  done
  echo http://deb.debian.org/debian
}
mirror=${BACKENDAUTH_DEBIAN_MIRROR:-$(debian_mirror)}

# The CA bundle pip uses here: pip's own setting (PIP_CERT, pip.conf), else requests' and
# OpenSSL's, else Debian's bundle.
host_ca() {
  local candidate
  for candidate in "${PIP_CERT:-}" "$(python3 -m pip config get global.cert 2>/dev/null || true)" \
    "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [[ -n $candidate && -f $candidate ]]; then
      echo "$candidate"
      return 0
    fi
  done
  die "no CA bundle found for pip (PIP_CERT, pip config global.cert, REQUESTS_CA_BUNDLE, SSL_CERT_FILE)"
}
ca=$(host_ca)

cache=$(docker_cache)
key=$( (cat "${BASH_SOURCE[0]}" && echo "$mirror $SUITE $PACKAGES" && cat "$ca") | sha256sum | cut -c1-12)
tag=backendauth-operator-base:$SUITE-$key
tarball=$cache/standin-$key.tar.gz

if present "$tag"; then
  echo "$tag"
  exit 0
fi

exec 8>"$cache/standin.lock"
flock 8
if [[ ! -s $tarball ]]; then
  [[ $(id -u) == 0 ]] || die "debootstrap needs root to build the stand-in base"
  command -v debootstrap >/dev/null || apt_install debootstrap
  rm -rf "$cache"/.standin.tmp.*
  tmp=$(mktemp -d "$cache/.standin.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "debootstrap --variant=minbase $SUITE from $mirror with $PACKAGES (a few minutes)"
  start=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/root" "$mirror" \
    >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    die "debootstrap failed"
  }
  # Trust what pip trusts on this machine, as Debian's trust store (Debian's pip reads it; the
  # image sets PIP_CERT for the pip a venv upgrades to, which reads its own bundle otherwise).
  cp "$ca" "$tmp/root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$tmp/root/var/lib/apt/lists/"* "$tmp/root/var/cache/apt/"*.bin "$tmp/root/var/cache/apt/archives/"*.deb \
    "$tmp/root/var/log/"*
  tar -C "$tmp/root" --numeric-owner -czf "$tmp/root.tar.gz" .
  mv "$tmp/root.tar.gz" "$tarball"
  for old in "$cache"/standin-*.tar.gz; do
    [[ $old == "$tarball" ]] || rm -f "$old"
  done
  log "stand-in root filesystem: $tarball ($((SECONDS - start)) s)"
fi
"$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >&2
echo "$tag"
