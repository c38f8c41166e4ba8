#!/usr/bin/env bash
# A Docker engine for the tests: the one that answers already, or a dockerd of our own.
#
#   bash tests/docker/engine.sh start   # last stdout line: "<DOCKER_HOST> <pid>"
#   bash tests/docker/engine.sh stop PID
#
# `start` prints the DOCKER_HOST to use and the pid of the dockerd it started, or 0 when an
# engine answered already (then it is someone else's: leave it alone). Without an engine it
# installs Debian's docker.io when dockerd is missing (apt-get, as root), then starts dockerd
# with its own data root, exec root, socket and pidfile under
#   ${BACKENDAUTH_DOCKER_CACHE:-$HOME/.cache/amplify-backendauth-operator/docker}/
# The data root is kept between runs (the base image and the build cache live there). This
# dockerd makes no bridge and touches no iptables: containers and builds use --network host.
#
# `stop PID` stops that dockerd (SIGTERM, then SIGKILL after 30 s) if PID is the one this
# script recorded in its pidfile; with PID 0 it does nothing. Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"

cache=$(docker_cache)
sock=$cache/run/docker.sock
pidfile=$cache/run/dockerd.pid

answers() { DOCKER_HOST=$1 timeout 20 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  # An engine that answers already: DOCKER_HOST, the default socket, or ours from another run.
  local candidate
  for candidate in ${DOCKER_HOST:+"$DOCKER_HOST"} unix:///var/run/docker.sock "unix://$sock"; do
    if answers "$candidate"; then
      log "using the Docker engine at $candidate"
      echo "$candidate 0"
      return 0
    fi
  done
  if ! command -v dockerd >/dev/null; then
    [[ $(id -u) == 0 ]] || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io needs root)"
    log "installing Debian's docker.io"
    apt_install docker.io
  fi
  mkdir -p "$cache/data" "$cache/run"
  exec 9>"$cache/engine.lock"
  flock 9
  if answers "unix://$sock"; then # started by another caller while we waited
    echo "unix://$sock 0"
    return 0
  fi
  # A pidfile of a dockerd that died (the machine rebooted, or it was SIGKILLed) would stop
  # dockerd from starting; one of a live dockerd means it is ours but not answering yet.
  if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    die "dockerd $(cat "$pidfile") (pidfile $pidfile) is running but does not answer on $sock; see $cache/dockerd.log"
  fi
  rm -f "$pidfile" "$sock"
  log "starting dockerd (data root $cache/data, log $cache/dockerd.log)"
  # setsid: the daemon outlives this script, and a Ctrl-C in the caller's terminal does not reach it.
  setsid dockerd \
    --data-root "$cache/data" --exec-root "$cache/run/exec" --pidfile "$pidfile" \
    -H "unix://$sock" --bridge none --iptables=false --ip-forward=false --ip-masq=false \
    </dev/null >>"$cache/dockerd.log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 90))
  until answers "unix://$sock"; do
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
  # The pid dockerd wrote is the one to stop (the same as $! unless setsid had to fork).
  pid=$(cat "$pidfile")
  log "dockerd $pid answers on unix://$sock"
  echo "unix://$sock $pid"
}

# SIGTERM, up to 30 s for dockerd to stop its containers and containerd, then SIGKILL.
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
  # Only the dockerd this script started: a dockerd whose pid is the one in our pidfile.
  if [[ ! -s $pidfile || $(cat "$pidfile") != "$pid" ]]; then
    die "$pid is not the dockerd recorded in $pidfile: not stopping it"
  fi
  log "stopping dockerd $pid"
  stop_pid "$pid"
  unmount_leftovers
}

# dockerd leaves the bind mount of the host's network namespace (exec root/netns/default), and a
# killed one its data root's mounts: unmount what is still mounted under this cache, deepest first.
unmount_leftovers() {
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
