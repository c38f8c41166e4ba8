#!/usr/bin/env bash
# The Docker engine kind runs its node containers in: a dockerd of our own, apart from the one of
# tests/docker/engine.sh (which builds the operator image), with its own data root, exec root,
# socket and pidfile under
#   ${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}/kind-docker/
#
#   bash tests/kind/engine.sh start   # last stdout line: "<DOCKER_HOST> <pid>"
#   bash tests/kind/engine.sh stop PID
#
# The data root is kept between runs: the node image lives there. This dockerd makes no default
# bridge and touches neither iptables nor ip_forward: kind's network (a bridge of its own) needs
# none of them on a single node, and the API server's port is published on 127.0.0.1 through
# docker-proxy. `start` prints 0 as the pid when our dockerd answers already (another caller
# started it: leave it alone). `stop PID` removes the networks left in this engine (kind's), stops
# that dockerd if PID is the one in our pidfile (SIGTERM, SIGKILL after 30 s), and unmounts what
# it left mounted under its directory. Progress goes to stderr. Debian's docker.io is installed
# with apt-get (as root) when dockerd is missing, and jq likewise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac
log() { echo "kind/engine.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}
if [[ -z ${DOCKER:-} ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi

cache=${BACKENDAUTH_K8S_CACHE:-$HOME/.cache/amplify-backendauth-operator}/kind-docker
sock=$cache/run/docker.sock
pidfile=$cache/run/dockerd.pid
export DOCKER_HOST=unix://$sock

answers() { timeout 20 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  # dockerd (Debian's docker.io) and jq (runc-bounded edits the containers' config with it).
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v jq >/dev/null || missing+=(jq)
  if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "${missing[*]} not installed (apt-get needs root)"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
  fi
  mkdir -p "$cache/data" "$cache/run"
  if answers; then # ours, started by another caller
    echo "$DOCKER_HOST 0"
    return 0
  fi
  # (dockerd is started without this descriptor: it must not hold the lock.)
  exec 9>"$cache/engine.lock"
  flock 9
  if answers; then
    echo "$DOCKER_HOST 0"
    return 0
  fi
  if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    die "dockerd $(cat "$pidfile") (pidfile $pidfile) is running but does not answer on $sock; see $cache/dockerd.log"
  fi
  rm -f "$pidfile" "$sock"
  log "starting dockerd (data root $cache/data, log $cache/dockerd.log)"
  setsid dockerd \
    --data-root "$cache/data" --exec-root "$cache/run/exec" --pidfile "$pidfile" -H "$DOCKER_HOST" \
    --add-runtime "runc-bounded=$here/runc-bounded" --default-runtime runc-bounded \
    --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    </dev/null >>"$cache/dockerd.log" 2>&1 9>&- &
  local pid=$! deadline=$((SECONDS + 90))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$cache/dockerd.log" >&2
      die "dockerd exited before answering (log: $cache/dockerd.log)"
    fi
    if ((SECONDS > deadline)); then
      stop_pid "$pid"
      die "dockerd did not answer on $sock within 90 s (log: $cache/dockerd.log)"
    fi
    sleep 0.2 # polling under the deadline above
  done
  pid=$(cat "$pidfile")
  log "dockerd $pid answers on $DOCKER_HOST"
  echo "$DOCKER_HOST $pid"
}

stop_pid() {
  local pid=$1 deadline=$((SECONDS + 30))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      log "dockerd $pid still running after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2 # polling under the deadline above
  done
}

stop() {
  local pid=${1:?usage: engine.sh stop PID}
  [[ $pid == 0 ]] && return 0
  [[ $pid =~ ^[0-9]+$ ]] || die "not a pid: $pid"
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != dockerd ]]; then
    log "dockerd $pid is not running"
    return 0
  fi
  if [[ ! -s $pidfile || $(cat "$pidfile") != "$pid" ]]; then
    die "$pid is not the dockerd recorded in $pidfile: not stopping it"
  fi
  # The bridges of the networks made in this engine (kind's) would outlive dockerd.
  local net
  for net in $("$DOCKER" network ls --filter type=custom --format '{{.Name}}' 2>/dev/null); do
    "$DOCKER" network rm "$net" >/dev/null 2>&1 || log "could not remove network $net"
  done
  log "stopping dockerd $pid"
  stop_pid "$pid"
  local target
  findmnt -rn -o TARGET | awk -v dir="$cache/" 'index($0, dir) == 1' | sort -r | while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" || log "could not unmount $target"
  done
}

case ${1:-} in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) die "usage: engine.sh start | engine.sh stop PID" ;;
esac
