#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs the full test suite against a real PostgreSQL (see scripts/pg.sh).
# Every test makes (and drops) its own database on that server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh
# The JavaScript clients the source map tests run.
# shellcheck source=lib/js-clients.sh
. scripts/lib/js-clients.sh
# The SMTP server the alert tests send to: Debian's aiosmtpd, run with
# Debian's own Python (a python3 earlier on PATH may lack it).
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-aiosmtpd
fi
# Unit, integration and doc tests; examples (quickstart, the ingest
# benchmark) are compiled too, so CI keeps them building.
cargo test "$@"
