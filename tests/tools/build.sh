#!/usr/bin/env bash
# Builds one tool the tests use, from the Go module pinned in tests/tools/<tool>/go.mod, into
# ${BACKENDAUTH_TOOLS_CACHE:-$HOME/.cache/amplify-backendauth-operator}/<tool>-<version>/<tool>,
# or does nothing when it is already there and reports that version. Progress goes to stderr;
# the last line on stdout is that directory:
#   dir=$(bash tests/tools/build.sh helm | tail -1)       # helm.sh/helm/v3, cmd/helm
#   dir=$(bash tests/tools/build.sh promtool | tail -1)   # github.com/prometheus/prometheus, cmd/promtool
#   dir=$(bash tests/tools/build.sh kstatus | tail -1)    # tests/tools/kstatus, on sigs.k8s.io/cli-utils
set -euo pipefail

tool=${1:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "build.sh: $*" >&2; }

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
# The toolchain on this machine is the only one: never try to download another.
# No go.work from a parent directory either.
export GOTOOLCHAIN=local GOWORK=off

# The version of a module required in go.mod.
modver() { sed -n "s|^[[:space:]]*\(require[[:space:]]\{1,\}\)\{0,1\}$1[[:space:]]\{1,\}\(v[^[:space:]]*\).*|\2|p" go.mod | head -1; }

case $tool in
  helm)
    cd "$here/helm"
    module=helm.sh/helm/v3
    version=$(modver 'helm\.sh/helm/v3')
    [[ $version =~ ^v3\.[0-9]+\.[0-9]+$ ]] || { log "no helm.sh/helm/v3 release in go.mod (got '$version')"; exit 1; }
    package=$module/cmd/helm
    tags=""
    # As helm's Makefile: the version, and the Kubernetes version that `helm template` and
    # `helm lint` assume (from the client-go it is built with: v0.X.Y is Kubernetes 1.X).
    client_go=$(modver 'k8s\.io/client-go')
    [[ $client_go =~ ^v0\.([0-9]+)\. ]] || { log "no k8s.io/client-go in go.mod (got '$client_go')"; exit 1; }
    k8s_minor=${BASH_REMATCH[1]}
    ldflags="-s -w -X $module/internal/version.version=$version -X $module/internal/version.metadata="
    for pkg in $module/pkg/lint/rules $module/pkg/chartutil; do
      ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
    reports_version() { local out; out=$("$1/helm" version --template '{{.Version}}' 2>/dev/null) && [[ $out == "$version" ]]; }
    ;;
  promtool)
    cd "$here/promtool"
    module=github.com/prometheus/prometheus
    modversion=$(modver 'github\.com/prometheus/prometheus')
    # Prometheus 3.M.P is published as the Go module version v0.3MM.P.
    [[ $modversion =~ ^v0\.3([0-9][0-9])\.([0-9]+)$ ]] || { log "no prometheus v0.3MM.P in go.mod (got '$modversion')"; exit 1; }
    version=v3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}
    package=$module/cmd/promtool
    # remove_all_sd: none of the service-discovery plugins (AWS, Azure, GCE, ...), which promtool's
    # rule and query checks do not use; a much smaller build. netgo as upstream's release builds.
    tags="netgo remove_all_sd"
    ldflags="-s -w -X github.com/prometheus/common/version.Version=${version#v}"
    reports_version() {
      local out; out=$("$1/promtool" --version 2>/dev/null) && grep -q "^promtool, version ${version#v} " <<<"$out"
    }
    ;;
  kstatus)
    # Our own command (tests/tools/kstatus/main.go) around cli-utils' kstatus: its version is
    # the cli-utils release plus a digest of its source, so a changed tool is built again.
    cd "$here/kstatus"
    cli_utils=$(modver 'sigs\.k8s\.io/cli-utils')
    [[ $cli_utils =~ ^v0\.[0-9]+\.[0-9]+$ ]] || { log "no sigs.k8s.io/cli-utils release in go.mod (got '$cli_utils')"; exit 1; }
    version=$cli_utils-$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)
    package=.
    tags=""
    ldflags="-s -w -X main.version=$version"
    reports_version() { local out; out=$("$1/kstatus" --version 2>/dev/null) && [[ $out == "$version" ]]; }
    ;;
  *)
    log "usage: build.sh helm|promtool|kstatus"
    exit 2
    ;;
esac

cache=${BACKENDAUTH_TOOLS_CACHE:-$HOME/.cache/amplify-backendauth-operator}
dir=$cache/$tool-$version

complete() { [[ -x $1/$tool ]] && reports_version "$1"; }

if complete "$dir"; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache"
# One build at a time per tool and cache; a second caller waits and then finds the binary there.
exec 9>"$cache/.$tool-$version.lock"
flock 9
if complete "$dir"; then
  echo "$dir"
  exit 0
fi

# Leftovers of a build that was killed (we hold the lock, so no one else is using them).
rm -rf "$cache/.$tool-$version.tmp."* "$cache/.$tool-$version.old."*
tmp=$(mktemp -d "$cache/.$tool-$version.tmp.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

"$GO" version >&2

# -mod=readonly: go.sum is complete (go mod tidy), so nothing may change it. The build
# downloads only the modules the selected packages need. -p 2: this machine has 2 cores.
flags=(-mod=readonly -trimpath -buildvcs=false -p 2)
start=$SECONDS
log "building $tool $version ($package) into $tmp"
CGO_ENABLED=0 "$GO" build "${flags[@]}" -tags "$tags" -ldflags "$ldflags" -o "$tmp/$tool" "$package"
log "built in $((SECONDS - start))s"

complete "$tmp" || { log "the built $tool does not report $version"; exit 1; }

# Swap the finished directory in (rename within the same parent); an old incomplete one goes.
if [[ -e $dir ]]; then
  old=$(mktemp -d "$cache/.$tool-$version.old.XXXXXX")
  mv -T "$dir" "$old/d"
  rm -rf "$old"
fi
mv -T "$tmp" "$dir"
trap - EXIT
log "$tool is in $dir"
echo "$dir"
