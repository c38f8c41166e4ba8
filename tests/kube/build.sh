#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go modules pinned in tests/kube/go.mod
# into ${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}/k8s-<version>/,
# or does nothing when they are already there and run. Progress goes to stderr; the last
# line on stdout is that directory:
#   dir=$(bash tests/kube/build.sh | tail -1)
# `build.sh node` also builds kubelet, kube-scheduler, kube-controller-manager and kube-proxy
# of the same release into the same directory (tests/node/ runs them).
set -euo pipefail

target=${1:-}
case $target in
  "" | node) ;;
  *) echo "usage: $0 [node]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
# The toolchain on this machine is the only one: never try to download another.
# No go.work from a parent directory either.
export GOTOOLCHAIN=local GOWORK=off

log() { echo "build.sh: $*" >&2; }

# The versions come from go.mod, which gen-replaces.sh writes.
modver() { sed -n "s|^[[:space:]]*\(require[[:space:]]\{1,\}\)\{0,1\}$1[[:space:]]\{1,\}\(v[^[:space:]]*\).*|\2|p" go.mod | head -1; }
version=$(modver 'k8s\.io/kubernetes')
etcd_version=$(modver 'go\.etcd\.io/etcd/server/v3')
[[ $version =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { log "no k8s.io/kubernetes release in $here/go.mod (got '$version')"; exit 1; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
[[ -n $etcd_version ]] || { log "no go.etcd.io/etcd/server/v3 in $here/go.mod"; exit 1; }

cache=${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}
dir=$cache/k8s-$version

# Present and runnable, and the version each one prints is the pinned one.
complete() {
  local d=$1
  [[ -x $d/kube-apiserver && -x $d/kubectl && -x $d/etcd ]] || return 1
  # Whole output first: `| grep -q` would close the pipe early and, under pipefail, fail.
  local out
  out=$("$d/kube-apiserver" --version 2>/dev/null) && grep -qx "Kubernetes $version" <<<"$out" || return 1
  out=$("$d/kubectl" version --client 2>/dev/null) && grep -qx "Client Version: $version" <<<"$out" || return 1
  out=$("$d/etcd" --version 2>/dev/null) && grep -qx "etcd Version: ${etcd_version#v}" <<<"$out" || return 1
}

node_binaries=(kubelet kube-scheduler kube-controller-manager kube-proxy)
# The same for the node's binaries: each one prints "Kubernetes <version>".
complete_node() {
  local d=$1 b out
  for b in "${node_binaries[@]}"; do
    [[ -x $d/$b ]] || return 1
    out=$("$d/$b" --version 2>/dev/null) && grep -qx "Kubernetes $version" <<<"$out" || return 1
  done
}

# Everything this call was asked for.
wanted() { complete "$1" && { [[ $target != node ]] || complete_node "$1"; }; }

if wanted "$dir"; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache"
# One build at a time per cache; a second caller waits and then finds the binaries there.
exec 9>"$cache/.k8s-$version.lock"
flock 9
if wanted "$dir"; then
  echo "$dir"
  exit 0
fi

"$GO" version >&2

# What `kube-apiserver --version` and `kubectl version` print (hack/lib/version.sh sets the same
# variables in both packages). Without them they report v0.0.0-master and kubectl warns of skew.
# gitCommit stays unset (upstream's placeholder): a module zip does not say which commit it is.
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.buildDate=$build_date"
done

# -mod=readonly: go.sum is complete (gen-replaces.sh ran go mod tidy), so nothing may change it.
# -p 2: this machine has 2 cores; the compile and link steps of kube-apiserver stay well
# under a few GiB each.
flags=(-mod=readonly -trimpath -buildvcs=false -p 2)

start=$SECONDS
log "downloading modules for k8s.io/kubernetes $version and etcd $etcd_version"
"$GO" mod download
log "modules ready in $((SECONDS - start))s"

if ! complete "$dir"; then
  # Leftovers of a build that was killed (we hold the lock, so no one else is using them).
  rm -rf "$cache/.k8s-$version.tmp."* "$cache/.k8s-$version.old."*
  tmp=$(mktemp -d "$cache/.k8s-$version.tmp.XXXXXX")
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT

  start=$SECONDS
  log "building kube-apiserver and kubectl $version into $tmp"
  "$GO" build "${flags[@]}" -ldflags "$ldflags" -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  log "building etcd $etcd_version"
  "$GO" build "${flags[@]}" -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  log "built in $((SECONDS - start))s"

  complete "$tmp" || { log "the built binaries do not report $version / etcd $etcd_version"; exit 1; }

  # Swap the finished directory in (rename within the same parent); an old incomplete one goes.
  if [[ -e $dir ]]; then
    old=$(mktemp -d "$cache/.k8s-$version.old.XXXXXX")
    mv -T "$dir" "$old/d"
    rm -rf "$old"
  fi
  mv -T "$tmp" "$dir"
  trap - EXIT
  log "kube-apiserver, kubectl and etcd are in $dir"
fi

if [[ $target == node ]] && ! complete_node "$dir"; then
  rm -rf "$dir/.node.tmp."*
  tmp=$(mktemp -d "$dir/.node.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  log "building ${node_binaries[*]} $version into $tmp"
  "$GO" build "${flags[@]}" -ldflags "$ldflags" -o "$tmp/" "${node_binaries[@]/#/k8s.io/kubernetes/cmd/}"
  log "built in $((SECONDS - start))s"
  complete_node "$tmp" || { log "the built node binaries do not report $version"; exit 1; }
  # Each one renamed into place (same filesystem), so a reader never sees half a binary.
  for b in "${node_binaries[@]}"; do mv -f "$tmp/$b" "$dir/$b"; done
  rm -rf "$tmp"
  trap - EXIT
  log "${node_binaries[*]} are in $dir"
fi

echo "$dir"
