#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs the server against a real PostgreSQL (see scripts/pg.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh
exec cargo run --release --bin mesher -- "$@"
