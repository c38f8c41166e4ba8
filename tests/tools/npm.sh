#!/usr/bin/env bash
# Installs the npm packages pinned in tests/tools/<name>/package-lock.json into
# ${BACKENDAUTH_TOOLS_CACHE:-$HOME/.cache/amplify-backendauth-operator}/<name>-<digest>/node_modules,
# where <digest> is taken from package.json and package-lock.json: a changed lock installs into a
# directory of its own, an unchanged one returns at once without asking npm anything. Progress
# goes to stderr; the last line on stdout is that directory:
#   dir=$(bash tests/tools/npm.sh gen2 | tail -1)   # $dir/node_modules/.bin/tsc, @aws-amplify/backend
#
#   bash tests/tools/npm.sh gen2 --lock   # after editing package.json: write package-lock.json anew
#
# Why `npm install` and not `npm ci`: npm 10 and 11 write a lock for @aws-amplify/backend that
# their own `npm ci` then refuses ("Missing: @opentelemetry/core@2.0.0 from lock file", a package
# inside the bundled dependencies of @aws-amplify/data-construct; npm/cli#9321, npm/cli#9821). So
# the script installs with `npm install` from the committed lock, in a scratch directory, and then
# requires the lock npm wrote there to be byte for byte the committed one: what `npm ci` promises
# (the lock decides every version, and a lock out of step with package.json is an error).
set -euo pipefail

name=${1:-}
mode=${2:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "npm.sh: $*" >&2; }

case $name in
  gen2) ;;
  *)
    log "usage: npm.sh gen2 [--lock]"
    exit 2
    ;;
esac
src=$here/$name
NPM=${NPM:-$(command -v npm || true)}
[[ -n $NPM ]] || { log "npm is not installed (Debian: apt-get install npm; or Node.js from nodejs.org)"; exit 1; }

cache=${BACKENDAUTH_TOOLS_CACHE:-$HOME/.cache/amplify-backendauth-operator}
npm_flags=(--ignore-scripts --no-audit --no-fund --no-update-notifier --loglevel=warn)

if [[ $mode == --lock ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp "$src/package.json" "$tmp/"
  # Twice: the first run leaves out parts of the bundled dependencies' trees that the second adds
  # (npm/cli#8726); the third changes nothing.
  for _ in 1 2; do
    (cd "$tmp" && "$NPM" install "${npm_flags[@]}" --cache "$tmp/.npm" >&2)
  done
  cp "$tmp/package-lock.json" "$src/package-lock.json"
  log "wrote $src/package-lock.json"
  exit 0
fi
[[ -z $mode ]] || { log "unknown option $mode"; exit 2; }

digest=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dir=$cache/$name-$digest

complete() { [[ -f $1/.complete && -d $1/node_modules ]]; }

if complete "$dir"; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache"
# One install at a time per lock and cache; a second caller waits and then finds it there.
exec 9>"$cache/.$name-$digest.lock"
flock 9
if complete "$dir"; then
  echo "$dir"
  exit 0
fi

rm -rf "$cache/.$name-$digest.tmp."* "$cache/.$name-$digest.old."*
tmp=$(mktemp -d "$cache/.$name-$digest.tmp.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$tmp/"

log "node $(node --version 2>/dev/null || echo '(none)'), npm $("$NPM" --version)"
start=$SECONDS
log "installing $src/package-lock.json into $dir"
# npm's download cache goes beside it rather than into ~/.npm, and is emptied after a successful
# install: the installed tree is what is kept.
(cd "$tmp" && "$NPM" install "${npm_flags[@]}" --cache "$cache/.npm-download-cache" --prefer-offline >&2)
if ! cmp -s "$src/package-lock.json" "$tmp/package-lock.json"; then
  diff -u "$src/package-lock.json" "$tmp/package-lock.json" | head -40 >&2 || true
  log "package-lock.json is not the lock npm makes of package.json: run 'bash tests/tools/npm.sh $name --lock' and commit it"
  exit 1
fi
rm -rf "$cache/.npm-download-cache"
log "installed in $((SECONDS - start))s ($(du -sh "$tmp/node_modules" | cut -f1))"
: >"$tmp/.complete"

if [[ -e $dir ]]; then
  old=$(mktemp -d "$cache/.$name-$digest.old.XXXXXX")
  mv -T "$dir" "$old/d"
  rm -rf "$old"
fi
mv -T "$tmp" "$dir"
trap - EXIT
log "$name is in $dir"
echo "$dir"
