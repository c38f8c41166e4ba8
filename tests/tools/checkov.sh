#!/usr/bin/env bash
# Installs checkov (the pinned release, from PyPI) into a virtualenv of its own, outside the repo
# and apart from the project's .venv (checkov pulls in ~100 packages that must not meet the
# project's pins): ${BACKENDAUTH_TOOLS_CACHE:-$HOME/.cache/amplify-backendauth-operator}/checkov-<version>/.
# Does nothing when it is there and reports that version. Progress goes to stderr; the last
# line on stdout is the directory of the checkov command:
#   bin=$(bash tests/tools/checkov.sh | tail -1); "$bin/checkov" --version
set -euo pipefail

version=3.3.30
PYTHON=${PYTHON:-python3}
log() { echo "checkov.sh: $*" >&2; }

cache=${BACKENDAUTH_TOOLS_CACHE:-$HOME/.cache/amplify-backendauth-operator}
dir=$cache/checkov-$version

# A venv cannot be moved (its scripts name their interpreter by absolute path), so it is made
# where it stays; the marker, written last, says that it is complete.
complete() {
  [[ -f $dir/.complete && -x $dir/bin/checkov ]] || return 1
  local out
  out=$("$dir/bin/checkov" --version 2>/dev/null) && [[ $out == "$version" ]]
}

if complete; then
  echo "$dir/bin"
  exit 0
fi

mkdir -p "$cache"
# One install at a time per cache; a second caller waits and then finds it there.
exec 9>"$cache/.checkov-$version.lock"
flock 9
if complete; then
  echo "$dir/bin"
  exit 0
fi

rm -rf "$dir"  # an incomplete one (an install that was killed or failed)
start=$SECONDS
log "installing checkov $version into $dir"
"$PYTHON" -m venv "$dir"
"$dir/bin/python" -m pip install -q --disable-pip-version-check "checkov==$version" >&2
complete_marker=$dir/.complete
: >"$complete_marker"
complete || { log "the installed checkov does not report $version"; rm -rf "$dir"; exit 1; }
log "installed in $((SECONDS - start))s"
echo "$dir/bin"
