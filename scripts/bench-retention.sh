#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# What retention costs (issue 23), against a `mesher` process started for
# the run, on a fresh database (see examples/retention_bench.rs): CPU and
# wake-ups of 10,000 idle projects with idle writers retiring vs. not, and
# dropping a day of 1 million events while ingestion runs. Extra arguments
# are passed to cargo. Knobs:
#   BENCH_RETENTION_PARTS  which parts, comma-separated (idle,drop)
#   BENCH_IDLE_PROJECTS    idle projects (10000)
#   BENCH_IDLE_SECS        seconds each idle run is measured (60)
#   BENCH_DROP_EVENTS      events in the day dropped (1000000)
#   BENCH_DROP_RATE        ingestion meanwhile, events/s (1000)
#   BENCH_DROP_BASE_SECS   seconds of the same load without a drop (15)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh

cargo build --release --bin mesher --example retention_bench "$@"

db="mesher_bench_retention_$$"
base=${DATABASE_URL%%\?*}
query=${DATABASE_URL#"$base"}
psql "$DATABASE_URL" -qc "CREATE DATABASE $db"
trap 'psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
DATABASE_URL="${base%/*}/$db$query" cargo run --quiet --release --example retention_bench "$@"
