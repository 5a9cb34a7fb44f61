#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Web UI page times on a project of 100,000 events, on a fresh database
# (see examples/page_bench.rs). Extra arguments are passed to cargo;
# BENCH_PAGES_REQUESTS (200) sets the requests per page.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh

cargo build --release --example page_bench "$@"

# A database of its own, dropped afterwards, so runs do not see each other.
db="mesher_bench_pages_$$"
base=${DATABASE_URL%%\?*}
query=${DATABASE_URL#"$base"}
psql "$DATABASE_URL" -qc "CREATE DATABASE $db"
trap 'psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
DATABASE_URL="${base%/*}/$db$query" cargo run --quiet --release --example page_bench "$@"
