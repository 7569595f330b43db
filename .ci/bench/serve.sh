#!/usr/bin/env bash
# Measures the real `lanyard serve` process as the Hydra and node-oidc-provider
# figures in README (Performance) were measured: wrk, 32 connections, 2 threads,
# against client_credentials grants and token introspection, and reads the
# process's memory from /proc (VmRSS at rest, VmHWM at the end).
#
#   .ci/bench/serve.sh sqlite   [DURATION]     # SQLite in a fresh data dir
#   .ci/bench/serve.sh postgres [DURATION]     # a fresh schema in LANYARD_TEST_POSTGRES_URL
#
# LANYARD_BENCH_DATABASE_URL runs it on an existing database instead (a full
# one made by `lanyard fixture`, with its LANYARD_ENCRYPTION_KEY exported).
# LANYARD_BIN measures that binary instead of building this checkout (to
# compare two versions under the same conditions). Needs wrk (apt-get install
# wrk). Duration default 20s.
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=${1:?usage: serve.sh sqlite|postgres [DURATION]}
duration=${2:-20s}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; [ -n "${schema:-}" ] && PGOPTIONS=--client-min-messages=warning psql "$LANYARD_TEST_POSTGRES_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null; rm -rf "$work"' EXIT
if [ -n "${LANYARD_BIN:-}" ]; then cp "$LANYARD_BIN" "$work/lanyard"; else go build -o "$work/lanyard" ./cmd/lanyard; fi

port=$((20000 + RANDOM % 20000))
issuer=http://127.0.0.1:$port
export LANYARD_DATABASE_URL=${LANYARD_BENCH_DATABASE_URL:-}
if [ -z "$LANYARD_DATABASE_URL" ] && [ "$backend" = postgres ]; then
	schema=lanyard_bench_$RANDOM$RANDOM
	psql "$LANYARD_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -qc "CREATE SCHEMA $schema"
	sep='?'; case "$LANYARD_TEST_POSTGRES_URL" in *\?*) sep='&';; esac
	export LANYARD_DATABASE_URL="$LANYARD_TEST_POSTGRES_URL${sep}search_path=$schema"
fi
"$work/lanyard" serve --dev --data "$work/data" --addr 127.0.0.1:$port --issuer "$issuer" --metrics-listen= \
	>"$work/serve.out" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -fs "$issuer/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$issuer/readyz" >/dev/null || { cat "$work/serve.log"; exit 1; }
sleep 1
echo "backend: $(grep -o 'database=[a-z]*' "$work/serve.log" | head -1)"
. .ci/bench/measure.sh
measure lanyard "$issuer/token" "$issuer/introspect"
