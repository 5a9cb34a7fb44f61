#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Source maps end to end, as a JavaScript team would use them: a small app
# (tests/js/app) bundled and minified by esbuild, its maps injected and
# uploaded by the official sentry-cli, run under Node with @sentry/node
# so that it throws; then the stored event's top frame, read back through
# the API, names the original file, line and function.
#
# Runs against a database of its own (mesher_sourcemaps_example, made
# afresh on each run, on the server scripts/pg.sh provides) and a Mesher
# on SOURCEMAPS_EXAMPLE_ADDR (default 127.0.0.1:8765), both stopped at
# the end. SENTRY_CLI=sentry-cli-2 runs sentry-cli 2.x instead of 3.x.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=pg.sh
. scripts/pg.sh
# shellcheck source=lib/js-clients.sh
. scripts/lib/js-clients.sh

addr=${SOURCEMAPS_EXAMPLE_ADDR:-127.0.0.1:8765}
url=http://$addr
cli=tests/js/node_modules/${SENTRY_CLI:-@sentry/cli}/bin/sentry-cli
say() { printf '\n== %s\n' "$*" >&2; }
# Reads one field of the JSON on standard input, e.g. `field .key.dsn`.
field() {
    node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        let v = JSON.parse(s);
        for (const k of process.argv[1].split(".").slice(1)) v = v[k];
        console.log(typeof v === "string" ? v : JSON.stringify(v));
    });' "$1"
}

say "building mesher"
mesher=$(cargo build -q --bin mesher --message-format=json |
    node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        for (const line of s.split("\n").filter(Boolean)) {
            const m = JSON.parse(line);
            if (m.reason === "compiler-artifact" && m.executable) console.log(m.executable);
        }
    });')

work=$(mktemp -d)
db=mesher_sourcemaps_example
export DATABASE_URL
admin_url=$DATABASE_URL
DATABASE_URL=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.href)' "$admin_url" "$db")
server=""
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    [ -z "$server" ] || wait "$server" 2>/dev/null || true
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
psql "$admin_url" -qc "CREATE DATABASE $db"

say "starting mesher on $url (log: $work/mesher.log)"
# The set-up commands below read the same settings (the DSN names the URL).
export MESHER_HTTP_ADDR=$addr MESHER_PUBLIC_URL=$url MESHER_SPOOL_DIR=$work/spool
MESHER_WRITER_FLUSH_MS=200 "$mesher" serve >"$work/mesher.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -sf "$url/readyz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/mesher.log" >&2; exit 1; }
    sleep 0.1
done

say "an organization, its owner, a project and an organization token"
"$mesher" org create --slug acme --name Acme >/dev/null
password="correct horse battery staple"
echo "$password" | "$mesher" user create --email owner@example.org --org acme --role owner >/dev/null
project=$("$mesher" project create --org acme --name "Web Shop" --platform javascript --json)
dsn=$(field .dsn <<<"$project")
public_id=$(field .public_id <<<"$project")
project_id=$(field .id <<<"$project")
token=$("$mesher" token create --org acme --label example --json | field .token)
echo "DSN $dsn, project $public_id" >&2

say "esbuild: bundle and minify tests/js/app with a source map"
mkdir -p "$work/app"
cp -r tests/js/app/src "$work/app/src"
(cd "$work/app" && "$OLDPWD/tests/js/node_modules/.bin/esbuild" src/main.js --bundle --minify \
    --sourcemap --platform=node --format=cjs --outfile=dist/app.js --log-level=warning)

say "sentry-cli sourcemaps inject and upload ($(node "$cli" --version))"
export SENTRY_URL=$url SENTRY_AUTH_TOKEN=$token SENTRY_DISABLE_UPDATE_CHECK=true
node "$cli" sourcemaps inject "$work/app/dist"
node "$cli" sourcemaps upload --org acme --project "$public_id" "$work/app/dist"

say "the minified app throws under @sentry/node"
event=$(SENTRY_DSN=$dsn node tests/js/app/run.js "$work/app/dist/app.js")
echo "event $event" >&2

say "the stored event, through the API"
session=$(curl -sf -X POST "$url/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\": \"owner@example.org\", \"password\": \"$password\"}" | field .token)
stored=""
for _ in $(seq 100); do
    stored=$(curl -sf "$url/api/v1/projects/$project_id/events/$event" \
        -H "Authorization: Bearer $session") && break
    sleep 0.1
done
[ -n "$stored" ] || { echo "the event was not stored; see $work/mesher.log" >&2; exit 1; }
node -e 'const e = JSON.parse(process.argv[1]);
    const ex = e.exception.values.at(-1);
    const frames = ex.stacktrace.frames, top = frames.at(-1);
    const raw = (ex.raw_stacktrace || { frames: [] }).frames.at(-1) || {};
    console.log(`${ex.type}: ${ex.value}`);
    console.log(`  resolved: at ${top.function} (${top.filename}:${top.lineno}:${top.colno})`);
    console.log(`  minified: at ${raw.function} (${raw.filename}:${raw.lineno}:${raw.colno})`);
    for (const [i, line] of (top.pre_context || []).entries())
        console.log(`  ${top.lineno - top.pre_context.length + i} | ${line}`);
    console.log(`> ${top.lineno} | ${top.context_line}`);
    for (const [i, line] of (top.post_context || []).entries())
        console.log(`  ${top.lineno + 1 + i} | ${line}`);
    if (!String(top.filename).includes("checkout.js") || top.function !== "chargeCard") {
        console.error("the top frame was not resolved to checkout.js chargeCard");
        process.exit(1);
    }' "$stored"
