#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs the full test suite against a real PostgreSQL (see scripts/pg.sh).
# Every test makes (and drops) its own database on that server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh
# Unit, integration and doc tests; examples (quickstart, the ingest
# benchmark) are compiled too, so CI keeps them building.
cargo test "$@"
