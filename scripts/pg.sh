#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Provides a reachable PostgreSQL and exports DATABASE_URL.
#   . scripts/pg.sh    -> DATABASE_URL exported in the calling script (exits it on failure)
#   scripts/pg.sh      -> prints DATABASE_URL=... on stdout
# A caller-supplied DATABASE_URL wins if it answers; otherwise a private cluster
# for this checkout is created/started and reused on every later run.
# All diagnostics go to stderr so callers' stdout stays clean.
set -euo pipefail
# shellcheck source=lib/pgdir.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pgdir.sh"

pg_log() { printf 'pg.sh: %s\n' "$*" >&2; }
pg_die() { pg_log "error: $*"; exit 1; }
pg_ok() { PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Prefer the binaries that created an existing cluster (a newer major version
# cannot open it), else the newest installed.
pg_find_bindir() {
  local ver d
  local -a cands=()
  if [[ -f $1/PG_VERSION ]]; then
    ver=$(<"$1/PG_VERSION")
    cands+=("/usr/lib/postgresql/$ver/bin")
  fi
  mapfile -t -O "${#cands[@]}" cands < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  cands+=("$(pg_config --bindir 2>/dev/null || true)" "$(dirname "$(command -v initdb || echo .)")")
  for d in "${cands[@]}"; do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then printf '%s\n' "$d"; return 0; fi
  done
  return 1
}

if [[ -n ${DATABASE_URL:-} ]] && command -v psql >/dev/null && pg_ok "$DATABASE_URL"; then
  pg_log "using the existing DATABASE_URL"
else
  if [[ -n ${DATABASE_URL:-} ]]; then
    pg_log "DATABASE_URL is set but not reachable; falling back to the private cluster"
  fi
  pg_dir=$(pg_datadir)

  if ! pg_bin=$(pg_find_bindir "$pg_dir") || ! command -v psql >/dev/null; then
    (( EUID == 0 )) || pg_die "PostgreSQL server binaries/psql not found; install PostgreSQL or set DATABASE_URL"
    pg_log "installing PostgreSQL via apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    pg_bin=$(pg_find_bindir "$pg_dir") || pg_die "PostgreSQL server binaries still not found after install"
  fi
  if (( EUID == 0 )) && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --no-create-home postgres
  fi

  if [[ ! -f $pg_dir/PG_VERSION ]]; then
    pg_log "initialising private cluster in $pg_dir"
    mkdir -p "$pg_dir"
    chmod 700 "$pg_dir"
    if (( EUID == 0 )); then chown postgres:postgres "$pg_dir"; fi
    # Captured, not piped: `locale -a | grep -q` can SIGPIPE under pipefail.
    pg_locales=$(locale -a 2>/dev/null || true)
    pg_locale=(--no-locale)
    if grep -qiE '^c\.utf-?8$' <<<"$pg_locales"; then pg_locale=(--locale=C.UTF-8); fi
    if ! pg_out=$(pg_as_owner "$pg_bin/initdb" -D "$pg_dir" -A trust -U postgres --encoding=UTF8 "${pg_locale[@]}" 2>&1); then
      printf '%s\n' "$pg_out" >&2
      pg_die "initdb failed in $pg_dir"
    fi
    # Port is chosen once and stored in the cluster so reruns reuse it.
    pg_port=54320
    while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do
      pg_port=$((pg_port + 1))
    done
    # No unix socket: TCP is all we use, and socket paths under a deep
    # checkout can exceed the 107-byte limit. max_connections: tests run
    # many pools in parallel.
    cat >>"$pg_dir/postgresql.conf" <<CONF

# --- mesher private dev cluster (scripts/pg.sh) ---
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = ''
max_connections = 200
CONF
  fi

  pg_port=$(sed -n 's/^port = \([0-9][0-9]*\).*/\1/p' "$pg_dir/postgresql.conf" | tail -n 1)
  [[ -n $pg_port ]] || pg_die "no 'port = N' line in $pg_dir/postgresql.conf"

  if pg_running "$pg_dir"; then
    pg_log "reusing running cluster in $pg_dir (port $pg_port)"
  else
    # Stale (see pg_running); postgres may refuse to start while it exists.
    rm -f "$pg_dir/postmaster.pid"
    pg_log "starting cluster in $pg_dir (port $pg_port)"
    if ! pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w -t 30 start >/dev/null; then
      tail -n 20 "$pg_dir/server.log" >&2 || true
      pg_die "could not start PostgreSQL in $pg_dir (log: $pg_dir/server.log)"
    fi
  fi

  DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  for (( pg_i = 0; ; pg_i++ )); do
    if pg_ok "$DATABASE_URL"; then break; fi
    (( pg_i < 30 )) || pg_die "PostgreSQL in $pg_dir not accepting connections after 30 s (log: $pg_dir/server.log)"
    sleep 1
  done
fi
export DATABASE_URL

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  printf 'DATABASE_URL=%s\n' "$DATABASE_URL"
fi
