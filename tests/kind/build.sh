#!/usr/bin/env bash
# Builds, once, everything a kind cluster of this project needs, with no container registry:
#
#   bash tests/kind/build.sh            # all of it; the last stdout line is the kind directory
#   bash tests/kind/build.sh PIECE      # one piece (the ones it needs must be there)
#
# Pieces (each cached under ${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}/kind/,
# keyed by its versions and a recipe number below, and skipped when present):
#   kind        sigs.k8s.io/kind from the Go module proxy (bin/kind-<version>)
#   kubeadm     k8s.io/kubernetes/cmd/kubeadm of the release in tests/kube/go.mod (bin/kubeadm-<version>)
#   binaries    coredns (tests/kind/coredns: CoreDNS's module with the plugins a kind cluster uses),
#               local-path-provisioner (its Go module) and kindnetd (tests/kind/kindnetd: the
#               project's own one-node pod network under kind's image name, since no Go module
#               serves kind's), static (CGO_ENABLED=0)
#   rootfs      two Debian root filesystems made with debootstrap: the node's (systemd, containerd,
#               runc, CNI plugins, iptables, conntrack, and kind's files from the kind module's
#               images/base) and the one the images run on (iptables, conntrack, a shell)
#   images      the images kubeadm and kind start, as one `docker save` archive, under the names and
#               tags they ask for: kube-apiserver, kube-controller-manager, kube-scheduler,
#               kube-proxy, etcd, coredns, pause, kindnetd, local-path-provisioner, local-path-helper
#   node-image  the kind node image, in the Docker engine of tests/kind/engine.sh: the node root
#               filesystem, kubeadm/kubelet/kubectl, and every image above imported into its
#               containerd, so that nothing is pulled (what `kind build node-image` does, which
#               pulls the images it did not build)
# Progress and the time of each piece go to stderr. The kind directory holds `env`, a file of
# shell assignments naming each piece (KIND, KUBECTL, NODE_IMAGE, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "kind/build.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local GOWORK=off

KIND_VERSION=v0.33.0
# kind v0.33.0's own image names (pkg/build/nodeimage/const_cni.go, const_storage.go).
KINDNETD_IMAGE=docker.io/kindest/kindnetd:v20260820-69b56db7
PROVISIONER_IMAGE=docker.io/kindest/local-path-provisioner:v20260820-69b56db7
HELPER_IMAGE=docker.io/kindest/local-path-helper:v20260131-7181c60a
# kind v0.33.0 builds local-path-provisioner v0.0.34 (images/local-path-provisioner/Makefile); the
# Go module proxy does not serve that version ("not available"), so the one before it.
PROVISIONER_VERSION=v0.0.33
SUITE=bookworm
NODE_PACKAGES=systemd,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,e2fsprogs
RUNTIME_PACKAGES=iptables,conntrack,nftables,ca-certificates

cache=${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}
kdir=$cache/kind
mkdir -p "$kdir/bin" "$kdir/images"
# Bumped when the recipe of a piece changes, so that the cached one is built again.
ROOTFS_RECIPE=1
IMAGES_RECIPE=1
NODE_RECIPE=2

modver() { sed -n "s|^[[:space:]]*\(require[[:space:]]\{1,\}\)\{0,1\}$1[[:space:]]\{1,\}\(v[^[:space:]]*\).*|\2|p" "$2" | head -1; }
K8S_VERSION=$(modver 'k8s\.io/kubernetes' "$repo/tests/kube/go.mod")
[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "no k8s.io/kubernetes release in tests/kube/go.mod"
K8S_MINOR=${BASH_REMATCH[1]}

# Runs "$@" and logs how long it took.
timed() {
  local what=$1 start=$SECONDS
  shift
  "$@"
  log "$what: $((SECONDS - start)) s"
}

# ---- kind
build_kind() {
  local out=$kdir/bin/kind-$KIND_VERSION
  [[ -x $out ]] && "$out" version 2>/dev/null | grep -q "^kind $KIND_VERSION " && return 0
  log "building kind $KIND_VERSION"
  local tmp
  tmp=$(mktemp -d)
  CGO_ENABLED=0 GOBIN=$tmp nice "$GO" install -trimpath -ldflags=-s "sigs.k8s.io/kind@$KIND_VERSION"
  mv -f "$tmp/kind" "$out"
  rm -rf "$tmp"
}

# ---- kubeadm: the tests/kube module (one pin for the release) with kubeadm added to its tools.
build_kubeadm() {
  local out=$kdir/bin/kubeadm-$K8S_VERSION
  [[ -x $out ]] && "$out" version -o short 2>/dev/null | grep -qx "$K8S_VERSION" && return 0
  log "building kubeadm $K8S_VERSION"
  local tmp build_date ldflags pkg
  tmp=$(mktemp -d)
  cp "$repo/tests/kube/go.mod" "$repo/tests/kube/go.sum" "$tmp/"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubeadm"\n)\n' >"$tmp/tools.go"
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR -X $pkg.buildDate=$build_date"
  done
  # The flags of tests/kube/build.sh (cgo as there too), so that the packages kubeadm shares
  # with the node's binaries come from the Go build cache.
  (cd "$tmp" && "$GO" mod tidy >&2 && nice "$GO" build -trimpath -buildvcs=false -p 2 \
    -ldflags "$ldflags" -o "$tmp/kubeadm" k8s.io/kubernetes/cmd/kubeadm)
  mv -f "$tmp/kubeadm" "$out"
  rm -rf "$tmp"
}

# ---- coredns, local-path-provisioner, kindnetd: static binaries.
build_binaries() {
  local tmp
  local coredns_bin
  coredns_bin=$(coredns_bin)
  if [[ ! -x $coredns_bin ]]; then
    log "building coredns $(coredns_version) (tests/kind/coredns)"
    (cd "$here/coredns" && CGO_ENABLED=0 nice "$GO" build -mod=readonly -trimpath -buildvcs=false -p 2 \
      -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$(coredns_version)" -o "$coredns_bin.tmp" .)
    mv -f "$coredns_bin.tmp" "$coredns_bin"
  fi
  if [[ ! -x $kdir/bin/local-path-provisioner-$PROVISIONER_VERSION ]]; then
    log "building local-path-provisioner $PROVISIONER_VERSION"
    tmp=$(mktemp -d)
    CGO_ENABLED=0 GOBIN=$tmp nice "$GO" install -trimpath -p 2 -ldflags "-s -w -X main.VERSION=$PROVISIONER_VERSION" \
      "github.com/rancher/local-path-provisioner@$PROVISIONER_VERSION"
    mv -f "$tmp/local-path-provisioner" "$kdir/bin/local-path-provisioner-$PROVISIONER_VERSION"
    rm -rf "$tmp"
  fi
  local kindnetd_key
  kindnetd_key=$(kindnetd_key)
  if [[ ! -x $kdir/bin/kindnetd-$kindnetd_key ]]; then
    log "building kindnetd (tests/kind/kindnetd)"
    (cd "$here/kindnetd" && CGO_ENABLED=0 nice "$GO" build -mod=readonly -trimpath -buildvcs=false -p 2 \
      -ldflags "-s -w" -o "$kdir/bin/.kindnetd.tmp" ./cmd/kindnetd)
    mv -f "$kdir/bin/.kindnetd.tmp" "$kdir/bin/kindnetd-$kindnetd_key"
  fi
}
coredns_version() {
  sed -n 's/^[[:space:]]*CoreDNSVersion = "\(v[^"]*\)".*/\1/p' "$(k8s_src)/cmd/kubeadm/app/constants/constants.go"
}
# tests/kind/coredns pins the CoreDNS kubeadm names; the binary is keyed by that and its source.
coredns_bin() {
  local wanted pinned key
  wanted=$(coredns_version)
  pinned=$(modver 'github\.com/coredns/coredns' "$here/coredns/go.mod")
  [[ $wanted == "$pinned" ]] || die "kubeadm $K8S_VERSION names CoreDNS $wanted; tests/kind/coredns/go.mod pins $pinned"
  key=$(cat "$here"/coredns/go.mod "$here"/coredns/go.sum "$here"/coredns/*.go | sha256sum | cut -c1-12)
  echo "$kdir/bin/coredns-$wanted-$key"
}
kindnetd_key() { (cd "$here/kindnetd" && find . -name '*.go' -o -name go.mod -o -name go.sum | sort | xargs cat) | sha256sum | cut -c1-12; }
k8s_src() {
  (cd "$repo/tests/kube" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
}
kind_src() {
  "$GO" mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p'
}

# ---- Debian root filesystems
# The Debian mirror apt uses for $SUITE (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
  local found
  found=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
      uri = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
        if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
      }
      if (ok && uri != "") { print uri; exit } }')
  [[ -n $found ]] || found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$SUITE" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2; exit }')
  echo "${found:-http://deb.debian.org/debian}"
}
mirror=${BACKENDAUTH_DEBIAN_MIRROR:-$(debian_mirror)}
rootfs_key() { echo "$ROOTFS_RECIPE $mirror $SUITE $1" | sha256sum | cut -c1-12; }

debootstrap_into() {
  local root=$1 packages=$2
  [[ $(id -u) == 0 ]] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
  nice debootstrap --variant=minbase --include="$packages" "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" >&2
    die "debootstrap failed (log $root.log)"
  }
}
clean_rootfs() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/var/cache/debconf/*-old "$root"/tmp/* "$root"/var/tmp/*
}

# The node: kind's images/base/Dockerfile, with Debian's containerd, runc and CNI plugins in place
# of its own builds of them.
build_rootfs_node() {
  local key out
  key=$(rootfs_key "$NODE_PACKAGES")
  out=$kdir/rootfs-node-$key.tar.gz
  [[ -s $out ]] && return 0
  log "debootstrap the node root filesystem ($SUITE: $NODE_PACKAGES)"
  local tmp files
  rm -rf "$kdir"/.rootfs-node.*
  tmp=$(mktemp -d "$kdir/.rootfs-node.XXXXXX")
  debootstrap_into "$tmp/root" "$NODE_PACKAGES"
  files=$(kind_src)/images/base/files
  local r=$tmp/root
  install -d -m 755 "$r/kind" "$r/kind/bin" "$r/LICENSES"
  install -m 755 "$files"/usr/local/bin/* "$r/usr/local/bin/"
  cp -r "$files"/kind/. "$r/kind/"
  chmod -R u=rwX,go=rX "$r/kind"
  chmod 755 "$r"/kind/bin/*
  install -m 644 "$files"/etc/crictl.yaml "$r/etc/"
  install -d "$r/etc/containerd" "$r/etc/default" "$r/etc/sysctl.d" "$r/etc/systemd/system/kubelet.service.d"
  install -m 644 "$files"/etc/containerd/* "$r/etc/containerd/"
  install -m 644 "$files"/etc/default/* "$r/etc/default/"
  install -m 644 "$files"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  find "$files/etc/systemd/system" -maxdepth 1 -type f -exec install -m 644 {} "$r/etc/systemd/system/" \;
  install -m 644 "$files"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  # Debian's binaries where kind's units and config look for its own builds.
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  install -d "$r/opt/cni/bin"
  local plugin
  for plugin in "$r"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/${plugin##*/}" "$r/opt/cni/bin/"; done
  # As kind's base: no services but its own, systemd as init, journald not reading kmsg.
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
    "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
    "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >&2
  chroot "$r" systemctl mask systemd-binfmt.service >&2
  mkdir -p "$r/etc/kubernetes/manifests"
  # The node's own ctr and jq (jq is among its packages).
  chroot "$r" sh -c 'ctr oci spec |
    jq ".hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" |
    jq "del(.process.rlimits)"' >"$r/etc/containerd/cri-base.json"
  : >"$r/etc/machine-id"
  clean_rootfs "$r"
  tar -C "$r" --numeric-owner -czf "$tmp/root.tar.gz" .
  mv "$tmp/root.tar.gz" "$out"
  rm -rf "$tmp"
}

# What the images run on: Debian with iptables, conntrack and a shell (kube-proxy and kindnetd
# call iptables; local-path-helper runs sh, mkdir and rm).
build_rootfs_runtime() {
  local key out
  key=$(rootfs_key "$RUNTIME_PACKAGES")
  out=$kdir/rootfs-runtime-$key.tar
  [[ -s $out ]] && return 0
  log "debootstrap the images' root filesystem ($SUITE: $RUNTIME_PACKAGES)"
  local tmp
  rm -rf "$kdir"/.rootfs-runtime.*
  tmp=$(mktemp -d "$kdir/.rootfs-runtime.XXXXXX")
  debootstrap_into "$tmp/root" "$RUNTIME_PACKAGES"
  clean_rootfs "$tmp/root"
  # apt and dpkg's databases stay (they say what is installed); apt's caches go.
  tar -C "$tmp/root" --numeric-owner --sort=name --mtime=@0 -cf "$tmp/root.tar" .
  mv "$tmp/root.tar" "$out"
  rm -rf "$tmp"
}

# ---- the images, as one `docker save` archive
pause_binary() {
  local out=$kdir/bin/pause-$K8S_VERSION src
  [[ -x $out ]] && return 0
  src=$(k8s_src)/build/pause/linux/pause.c
  [[ -f $src ]] || die "no $src"
  command -v gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc libc6-dev >&2
  gcc -Os -Wall -Werror -static -DVERSION="$(pause_tag)-k8s-$K8S_VERSION" -o "$out.tmp" "$src"
  mv -f "$out.tmp" "$out"
}
pause_tag() { sed -n 's/^[[:space:]]*PauseVersion = "\([^"]*\)".*/\1/p' "$(k8s_src)/cmd/kubeadm/app/constants/constants.go"; }

# The image kubeadm asks for whose repository ends in /NAME.
kubeadm_image() { grep "/$1:" <<<"$kubeadm_images" | head -1; }

build_images() {
  local k8s coredns_bin kindnetd_key runtime spec key out
  k8s=$(bash "$repo/tests/kube/build.sh" node | tail -1)
  coredns_bin=$(coredns_bin)
  kindnetd_key=$(kindnetd_key)
  runtime=$kdir/rootfs-runtime-$(rootfs_key "$RUNTIME_PACKAGES").tar
  [[ -s $runtime ]] || die "no $runtime: build the rootfs-runtime piece first"
  pause_binary
  kubeadm_images=$("$kdir/bin/kubeadm-$K8S_VERSION" config images list --kubernetes-version "$K8S_VERSION")
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause; do
    [[ -n $(kubeadm_image "$b") ]] || die "kubeadm names no $b image: $kubeadm_images"
  done
  spec=$(python3 - "$runtime" <<PY
import json, sys
bin = "$kdir/bin"
k8s = "$k8s"
def control(name):
    return {"name": name, "base": True, "files": {f"/usr/local/bin/{name.split('/')[-1].split(':')[0]}": f"{k8s}/{name.split('/')[-1].split(':')[0]}"}}
images = [control(n) for n in """$(kubeadm_image kube-apiserver) $(kubeadm_image kube-controller-manager) $(kubeadm_image kube-scheduler) $(kubeadm_image kube-proxy) $(kubeadm_image etcd)""".split()]
images += [
    {"name": "$(kubeadm_image coredns)", "base": True, "files": {"/coredns": "$coredns_bin"}, "entrypoint": ["/coredns"]},
    {"name": "$(kubeadm_image pause)", "files": {"/pause": f"{bin}/pause-$K8S_VERSION"}, "entrypoint": ["/pause"], "user": "65535:65535"},
    {"name": "$KINDNETD_IMAGE", "base": True, "files": {"/bin/kindnetd": f"{bin}/kindnetd-$kindnetd_key"}, "cmd": ["/bin/kindnetd"]},
    {"name": "$PROVISIONER_IMAGE", "base": True, "files": {"/usr/local/bin/local-path-provisioner": f"{bin}/local-path-provisioner-$PROVISIONER_VERSION"}, "entrypoint": ["/usr/local/bin/local-path-provisioner"]},
    {"name": "$HELPER_IMAGE", "base": True},
]
print(json.dumps({"base": sys.argv[1], "images": images}, indent=1, sort_keys=True))
PY
)
  key=$( (echo "$IMAGES_RECIPE" && echo "$spec" && cat "$here/image.py") | sha256sum | cut -c1-12)
  out=$kdir/images/images-$key.tar
  if [[ ! -s $out ]]; then
    log "writing the images into $out"
    echo "$spec" >"$out.json"
    for b in $(python3 -c 'import json,sys; [print(p) for i in json.load(open(sys.argv[1]))["images"] for p in i.get("files", {}).values()]' "$out.json"); do
      [[ -x $b ]] || die "missing $b"
    done
    nice python3 "$here/image.py" "$out" "$out.json"
    for old in "$kdir"/images/images-*.tar; do [[ $old == "$out" ]] || rm -f "$old" "$old.json"; done
  fi
  images_tar=$out
}

# ---- the node image, in kind's Docker engine (tests/kind/engine.sh)
# A manifest of kind's (pkg/build/nodeimage/const_*.go), with the image names it concatenates.
kind_manifest() {
  python3 - "$1" "$2" <<'PY'
import re, sys
source = open(sys.argv[1]).read()
consts = dict(re.findall(r'^const (\w+) = "([^"]*)"', source, re.M))
expr = re.search(r"^const %s = (.*?^`)[ \t]*$" % sys.argv[2], source, re.M | re.S).group(1)
print("".join(t[1:-1] if t.startswith("`") else consts[t] for t in re.findall(r"`[^`]*`|\w+", expr)), end="")
PY
}

build_node_image() {
  build_images
  local k8s rootfs_key node_key base_tag host pid
  k8s=$(bash "$repo/tests/kube/build.sh" node | tail -1)
  rootfs_key=$(rootfs_key "$NODE_PACKAGES")
  local rootfs=$kdir/rootfs-node-$rootfs_key.tar.gz
  [[ -s $rootfs ]] || die "no $rootfs: build the rootfs-node piece first"
  node_key=$(echo "$NODE_RECIPE $rootfs_key $images_tar $(sha256sum "$k8s/kubelet" "$k8s/kubectl" "$kdir/bin/kubeadm-$K8S_VERSION" | cut -c1-12)" |
    sha256sum | cut -c1-12)
  NODE_IMAGE=backendauth-operator.local/kind-node:$K8S_VERSION-$node_key
  base_tag=backendauth-operator.local/kind-base:$SUITE-$rootfs_key
  read -r host pid < <(bash "$here/engine.sh" start | tail -1)
  [[ -n ${pid:-} ]] || die "engine.sh start printed no engine"
  export DOCKER_HOST=$host
  local docker=${DOCKER:-/usr/bin/docker}
  # shellcheck disable=SC2064 # the pid now
  trap "bash '$here/engine.sh' stop $pid" EXIT
  if "$docker" image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  if ! "$docker" image inspect "$base_tag" >/dev/null 2>&1; then
    log "importing the node root filesystem as $base_tag"
    "$docker" import --change 'ENV container=docker' \
      --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "$rootfs" "$base_tag" >&2
  fi
  log "building $NODE_IMAGE"
  local cid pause src
  cid=$("$docker" run -d --network none --entrypoint sleep --security-opt seccomp=unconfined "$base_tag" infinity)
  # shellcheck disable=SC2064
  trap "'$docker' rm -f -v $cid >/dev/null 2>&1; bash '$here/engine.sh' stop $pid" EXIT
  node_exec() { "$docker" exec -i "$cid" "$@"; }
  "$docker" cp "$kdir/bin/kubeadm-$K8S_VERSION" "$cid:/usr/bin/kubeadm"
  "$docker" cp "$k8s/kubelet" "$cid:/usr/bin/kubelet"
  "$docker" cp "$k8s/kubectl" "$cid:/usr/bin/kubectl"
  node_exec chown root:root /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl
  node_exec chmod 755 /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl
  echo -n "$K8S_VERSION" | node_exec tee /kind/version >/dev/null
  # The sandbox image kubeadm names, which the images archive holds.
  pause=$(kubeadm_image pause)
  node_exec sed -i "s|^\([[:space:]]*sandbox_image = \).*|\1\"$pause\"|" /etc/containerd/config.toml
  # Lowering a process's OOM score takes CAP_SYS_RESOURCE. Where the machine's bounding set lacks
  # it (see engine.sh), runc cannot give a sandbox containerd's negative score and fails every one
  # with "can't get final child's PID from pipe: EOF". Restricted, the score of a container is
  # never set below containerd's own (what kind does for rootless nodes).
  node_exec sed -i "s|^\([[:space:]]*restrict_oom_score_adj = \).*|\1true|" /etc/containerd/config.toml
  node_exec mkdir -p /kind/manifests
  src=$(kind_src)/pkg/build/nodeimage
  kind_manifest "$src/const_cni.go" defaultCNIManifest | node_exec tee /kind/manifests/default-cni.yaml >/dev/null
  kind_manifest "$src/const_storage.go" defaultStorageManifest | node_exec tee /kind/manifests/default-storage.yaml >/dev/null
  # As kind's own build: a containerd in the build container, the images imported into its
  # content store (unpacked on the node when first used), pinned so kubelet never removes them.
  node_exec bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  node_exec bash -c 'for i in $(seq 100); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 0.1; done; cat /tmp/containerd.log; exit 1'
  node_exec ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests - <"$images_tar" >&2
  local ref
  for ref in $(node_exec ctr --namespace=k8s.io images list -q); do
    node_exec ctr --namespace=k8s.io images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
  done
  node_exec ctr --namespace=k8s.io images list -q >&2
  node_exec pkill containerd
  # Gone once it is no more than a zombie (sleep, the build container's first process, reaps none).
  node_exec bash -c 'for i in $(seq 300); do ps -C containerd -o stat= | grep -qv Z || exit 0; sleep 0.1; done; exit 1'
  node_exec rm -rf /tmp/containerd.log /run/containerd
  "$docker" commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' "$cid" "$NODE_IMAGE" >&2
  # systemd stops on SIGRTMIN+3, as in kind's base image (neither import nor commit can set it).
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$NODE_IMAGE" | DOCKER_BUILDKIT=0 "$docker" build -q -t "$NODE_IMAGE" - >&2
  log "built $NODE_IMAGE"
  # Older node images of ours go.
  local old
  for old in $("$docker" image ls --format '{{.Repository}}:{{.Tag}}' backendauth-operator.local/kind-node); do
    [[ $old == "$NODE_IMAGE" ]] || "$docker" image rm "$old" >/dev/null 2>&1 || true
  done
}

# Everything, the independent pieces at once (the Go builds one after another: each takes both
# cores), then the images and the node image; then the env file.
build_all() {
  local go_pid node_pid runtime_pid failed=0
  # Installed once here, not by the two debootstraps at once (apt's lock).
  if ! command -v debootstrap >/dev/null; then
    [[ $(id -u) == 0 ]] || die "debootstrap is not installed (apt-get needs root)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2; }
  fi
  (timed kind build_kind && timed kubeadm build_kubeadm && timed binaries build_binaries) &
  go_pid=$!
  timed rootfs-node build_rootfs_node &
  node_pid=$!
  timed rootfs-runtime build_rootfs_runtime &
  runtime_pid=$!
  wait "$go_pid" || failed=1
  wait "$node_pid" || failed=1
  wait "$runtime_pid" || failed=1
  ((failed == 0)) || die "a piece failed (see above)"
  timed node-image build_node_image
  local k8s
  k8s=$(bash "$repo/tests/kube/build.sh" node | tail -1)
  cat >"$kdir/env.tmp" <<ENV
KIND=$kdir/bin/kind-$KIND_VERSION
KIND_VERSION=$KIND_VERSION
KUBECTL=$k8s/kubectl
K8S_VERSION=$K8S_VERSION
NODE_IMAGE=$NODE_IMAGE
ENGINE=$here/engine.sh
ENV
  mv "$kdir/env.tmp" "$kdir/env"
  echo "$kdir"
}

case ${1:-all} in
  all) timed all build_all ;;
  kind) timed kind build_kind ;;
  kubeadm) timed kubeadm build_kubeadm ;;
  binaries) timed binaries build_binaries ;;
  rootfs-node) timed rootfs-node build_rootfs_node ;;
  rootfs-runtime) timed rootfs-runtime build_rootfs_runtime ;;
  images) timed images build_images ;;
  node-image) timed node-image build_node_image ;;
  *) die "unknown piece ${1:-}: all, kind, kubeadm, binaries, rootfs-node, rootfs-runtime, images, node-image" ;;
esac
