#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Ingest benchmark: StorageWriter throughput against the binary COPY
# ceiling, on a fresh database (see examples/ingest_bench.rs). Extra
# arguments are passed to cargo; BENCH_EVENTS and BENCH_PACED_SECS tune it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh

cargo build --release --example ingest_bench "$@"

# A database of its own, dropped afterwards, so runs do not see each other.
db="mesher_bench_$$"
base=${DATABASE_URL%%\?*}
query=${DATABASE_URL#"$base"}
psql "$DATABASE_URL" -qc "CREATE DATABASE $db"
trap 'psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
# cargo run finds the binary wherever CARGO_TARGET_DIR (or a config) puts it.
DATABASE_URL="${base%/*}/$db$query" cargo run --quiet --release --example ingest_bench "$@"
