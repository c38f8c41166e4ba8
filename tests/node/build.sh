#!/usr/bin/env bash
# Everything a real node needs, built or installed once; the last line on stdout is the
# directory that holds it (progress goes to stderr):
#   dir=$(bash tests/node/build.sh | tail -1)
#
# - kube-apiserver, etcd, kubectl, kubelet, kube-scheduler, kube-controller-manager and
#   kube-proxy of the release pinned in tests/kube/go.mod (`tests/kube/build.sh node`);
# - pause-image.tar: the pause container, compiled (gcc -Os -static) from build/pause/linux/pause.c
#   of that same k8s.io/kubernetes module, as a one-layer docker-save archive that
#   `ctr images import` loads, named $PAUSE_IMAGE;
# - containerd, runc and the CNI plugins from Debian (apt-get install when one is missing; root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "node/build.sh: $*" >&2; }

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local GOWORK=off

# The name the containerd config of tests/real_node.py gives as its sandbox image.
PAUSE_IMAGE=${PAUSE_IMAGE:-local.test/pause:3.10.2}
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}

# ---- Debian packages
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v ctr >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
for plugin in bridge host-local loopback portmap; do
  [[ -x $CNI_BIN_DIR/$plugin ]] || { missing+=(containernetworking-plugins); break; }
done
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v iptables >/dev/null || missing+=(iptables)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]} with apt-get"
  [[ $(id -u) == 0 ]] || { log "not root: cannot install ${missing[*]}"; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
fi

# ---- Kubernetes binaries
dir=$(bash "$repo/tests/kube/build.sh" node | tail -1)

# ---- pause image
out=$dir/pause-image.tar
if [[ -s $out && $(cat "$out.name" 2>/dev/null) == "$PAUSE_IMAGE" ]]; then
  echo "$dir"
  exit 0
fi
version=$(sed -n 's|^[[:space:]]*\(require[[:space:]]\{1,\}\)\{0,1\}k8s\.io/kubernetes[[:space:]]\{1,\}\(v[^[:space:]]*\).*|\2|p' "$repo/tests/kube/go.mod" | head -1)
src=$(cd "$repo/tests/kube" && "$GO" mod download -json "k8s.io/kubernetes@$version" |
  sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
[[ -f $src/build/pause/linux/pause.c ]] || { log "no build/pause/linux/pause.c in k8s.io/kubernetes@$version"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/rootfs"
gcc -Os -Wall -Werror -static -DVERSION="${PAUSE_IMAGE##*:}-k8s-$version" \
  -o "$work/rootfs/pause" "$src/build/pause/linux/pause.c"
# A docker-save archive: layer.tar, the image config named by its digest, manifest.json.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" pause
python3 - "$work" "$PAUSE_IMAGE" <<'PY'
import hashlib, json, pathlib, sys
work, name = pathlib.Path(sys.argv[1]), sys.argv[2]
layer = hashlib.sha256((work / "layer.tar").read_bytes()).hexdigest()
config = {
    "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "gcc -Os -static pause.c"}],
}
data = json.dumps(config, sort_keys=True).encode()
digest = hashlib.sha256(data).hexdigest()
(work / f"{digest}.json").write_bytes(data)
manifest = [{"Config": f"{digest}.json", "RepoTags": [name], "Layers": ["layer.tar"]}]
(work / "manifest.json").write_text(json.dumps(manifest))
PY
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$work/image.tar" \
  manifest.json layer.tar "$(cd "$work" && ls ./*.json | grep -v manifest | xargs -n1 basename)"
mv -f "$work/image.tar" "$out"
echo "$PAUSE_IMAGE" >"$out.name"
log "pause image $PAUSE_IMAGE in $out"
echo "$dir"
