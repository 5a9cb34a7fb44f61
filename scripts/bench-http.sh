#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# End-to-end benchmark: Sentry envelopes over HTTP against a `mesher`
# process started for the run, on a fresh database; the knee for 1, 100 and
# 10,000 projects against a sustained COPY ceiling (see
# examples/http_bench.rs). Extra arguments are passed to cargo. Knobs:
#   BENCH_HTTP_CEILING_SECS  length of the COPY ceiling (10)
#   BENCH_HTTP_STEP_SECS     length of each offered-rate step (10)
#   BENCH_HTTP_PROJECTS      project counts, comma-separated (1,100,10000)
#   BENCH_HTTP_START         first offered rate, events/s (a quarter of the ceiling)
#   BENCH_HTTP_REFINE        bisections after the first failed step (3)
#   BENCH_HTTP_MAX_STEPS     steps at most per project count (12)
#   BENCH_HTTP_CONNECTIONS   keep-alive connections (64)
#   BENCH_HTTP_THREADS       load generator threads (2)
#   BENCH_HTTP_ALERTS        1: each knee again with a new-issue and a frequency
#                            alert rule on every project, and the time from an
#                            event to its webhook at rest (0)
#   BENCH_HTTP_KEEP_ISSUES   1: steps keep the issues (events recur in known
#                            issues after the warm-up) rather than making every
#                            issue anew at each step (0)
#   BENCH_HTTP_RATE_LIMIT    events a minute every project is limited to (none)
# A smoke run of about a minute:
#   BENCH_HTTP_CEILING_SECS=3 BENCH_HTTP_STEP_SECS=2 BENCH_HTTP_PROJECTS=1,100 \
#   BENCH_HTTP_REFINE=0 BENCH_HTTP_MAX_STEPS=2 scripts/bench-http.sh
# Mesher runs with its defaults; MESHER_* variables set here reach it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh

# The example starts the `mesher` binary it finds next to itself, so both
# are built in one go, wherever cargo puts them.
cargo build --release --bin mesher --example http_bench "$@"

# A database of its own, dropped afterwards, so runs do not see each other.
db="mesher_bench_http_$$"
base=${DATABASE_URL%%\?*}
query=${DATABASE_URL#"$base"}
psql "$DATABASE_URL" -qc "CREATE DATABASE $db"
trap 'psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
DATABASE_URL="${base%/*}/$db$query" cargo run --quiet --release --example http_bench "$@"
