#!/usr/bin/env bash
# Sourced by pg.sh and pg-stop.sh so both always agree on which private cluster
# belongs to this checkout.
set -euo pipefail

pg_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

# initdb/pg_ctl refuse to run as root; cd / because postgres may not be allowed
# to enter the caller's working directory.
pg_as_owner() {
  if (( EUID == 0 )); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# True if postmaster.pid names a live process whose cwd is this data dir. After a
# reboot the PID may belong to an unrelated process, which fools `pg_ctl status`
# (and its stop would signal that process). Checked as the owner since root may
# lack ptrace rights over postgres's /proc entries.
pg_running() {
  local pid
  pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null || true)
  [[ -n $pid && $(pg_as_owner readlink "/proc/$pid/cwd" 2>/dev/null || true) == "$1" ]]
}

# Prints the data dir. As root the server runs as `postgres`, which cannot reach
# a checkout under e.g. /root (0700, typical for CI clones); then use a /tmp dir
# keyed by the checkout path so reruns still find the same cluster.
pg_datadir() {
  local dir=$pg_top/.pg
  if (( EUID == 0 )); then
    # `test` as postgres resolves the whole path, so it checks every parent too.
    local -a probe=(-x "$pg_top")
    [[ -e $dir ]] && probe=(-w "$dir" -a -x "$dir")
    if ! runuser -u postgres -- test "${probe[@]}" 2>/dev/null; then
      dir=/tmp/mesher-pg-$(printf %s "$pg_top" | sha256sum | cut -c1-12)
    fi
  fi
  printf '%s\n' "$dir"
}
