#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs the full test suite against a real PostgreSQL (see scripts/pg.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh
cargo test --all-targets "$@"
# --all-targets does not include doctests.
cargo test --doc
