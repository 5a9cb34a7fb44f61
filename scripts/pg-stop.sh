#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stops this checkout's private cluster (the one scripts/pg.sh starts); its data is kept.
set -euo pipefail
# shellcheck source=lib/pgdir.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pgdir.sh"

dir=$(pg_datadir)
if [[ ! -f $dir/PG_VERSION ]]; then
  echo "pg-stop.sh: no private cluster at $dir" >&2
  exit 0
fi
# Use the binaries matching the cluster, falling back to whatever pg_ctl is on PATH.
bin=/usr/lib/postgresql/$(<"$dir/PG_VERSION")/bin
[[ -x $bin/pg_ctl ]] || bin=$(dirname "$(command -v pg_ctl)")

if pg_running "$dir"; then
  pg_as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >&2
else
  echo "pg-stop.sh: cluster at $dir is not running" >&2
fi
