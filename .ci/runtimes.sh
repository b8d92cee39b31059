#!/usr/bin/env bash
# The runtime tests on the packed package, installed into a scratch project as a user would:
# Node, Deno, Bun, workerd and Chromium (see test/runtimes/run.mjs). The only place that
# installs them: Debian's chromium (apt) and the npm packages deno, bun, workerd and
# playwright-core in the scratch project. Writes .ci/runtimes-report.json ({passed, failed, skipped}).
# A runtime that cannot be installed is skipped; one that runs and disagrees with Node fails.
set -uo pipefail
cd "$(dirname "$0")/.."

report=.ci/runtimes-report.json
rm -f "$report"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/hooklens-runtimes.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# @huggingface/tokenizers: the optional peer dependency the browser page tokenizes text with.
RUNTIMES="deno@2.9.6 bun@1.4.5 workerd@1.20261117.1 playwright-core@1.65.1 @huggingface/tokenizers@0.2.0"

if [ ! -x /usr/bin/chromium ]; then
  echo "runtimes: installing Debian's chromium"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$scratch/apt.log" 2>&1 \
    || { echo "runtimes: chromium could not be installed (its checks are skipped):"; tail -5 "$scratch/apt.log"; }
fi

# The tarball a user would get (dist/ and build/ were built by npm ci's prepare).
tarball=$(npm pack --ignore-scripts --silent --pack-destination "$scratch" | tail -1)
echo "runtimes: packed $tarball ($(du -k "$scratch/$tarball" | cut -f1) KiB)"
cd "$scratch"
npm init -y >/dev/null
if ! npm i --no-audit --no-fund --loglevel=error "./$tarball"; then
  echo "runtimes: the tarball does not install"
  echo '{"passed":0,"failed":1,"skipped":0}' >"$OLDPWD/$report"
  exit 1
fi
# The runtimes ship their binaries in per-platform optional packages (no download at install).
if ! npm i --no-audit --no-fund --loglevel=error $RUNTIMES; then
  for pkg in $RUNTIMES; do npm i --no-audit --no-fund --loglevel=error "$pkg" || echo "runtimes: $pkg did not install; its checks are skipped"; done
fi
cd "$OLDPWD"

node test/runtimes/run.mjs --project "$scratch" --report "$report" --screenshots .ci/artifacts/browser
