#!/usr/bin/env bash
# Sourced by test.sh and sourcemaps-example.sh: installs the JavaScript
# clients the source map tests and example run (esbuild, sentry-cli 3.x
# and 2.x, @sentry/node), pinned by tests/js/package-lock.json; installed
# again when the lock file changed. npm's registry is the only network use.
set -euo pipefail

js_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
if [ ! -e "$js_top/tests/js/node_modules/.package-lock.json" ] ||
    [ "$js_top/tests/js/package-lock.json" -nt "$js_top/tests/js/node_modules/.package-lock.json" ]; then
    (cd "$js_top/tests/js" && npm ci --no-audit --no-fund --loglevel=error)
fi
