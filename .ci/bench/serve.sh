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
mem() { awk -v f="$1:" '$1 == f {print $2 / 1024 " MiB"}' /proc/$pid/status; }
sleep 1
echo "backend: $(grep -o 'database=[a-z]*' "$work/serve.log" | head -1)"
echo "idle: VmRSS $(mem VmRSS)"

# CPU time (ticks) of a process, and of the PostgreSQL backends serving it
# (found by the client ports of its connections): the machine-independent
# cost of a request, which a shared or noisy machine does not distort.
ticks() { awk '{print $14 + $15}' /proc/$1/stat 2>/dev/null || echo 0; }
pg_ticks() {
	local t=0 port bp
	for port in $(ss -tnpH 2>/dev/null | grep "pid=$pid," | awk '$5 ~ /:5432$/ {sub(/.*:/, "", $4); print $4}'); do
		for bp in $(pgrep -f "\($port\)" || true); do t=$((t + $(ticks "$bp"))); done
	done
	echo $t
}
hz=$(getconf CLK_TCK)
# load URL: wrk, then requests/s, latency and CPU per request
load() {
	local what=$1 url=$2 s0 p0 out n
	wrk -t2 -c32 -d2s -s .ci/bench/post.lua "$url" >/dev/null # warm-up: the pool at full size
	s0=$(ticks $pid); p0=$(pg_ticks)
	out=$( { /usr/bin/time -f 'wrk-cpu %U %S' wrk -t2 -c32 -d"$duration" -s .ci/bench/post.lua "$url"; } 2>&1 )
	n=$(echo "$out" | awk '/requests in/ {print $1}')
	echo "--- $what, 32 connections, $duration"
	echo "$out" | grep -E 'Requests/sec|Latency|non-2xx'
	echo "$out" | awk -v n="$n" -v s="$(( $(ticks $pid) - s0 ))" -v p="$(( $(pg_ticks) - p0 ))" -v hz="$hz" '
		/^wrk-cpu/ { w = ($2 + $3) * 1e6 / n }
		END { printf "    CPU per request: lanyard %.0f µs, PostgreSQL %.0f µs, wrk %.0f µs\n", s * 1e6 / hz / n, p * 1e6 / hz / n, w }'
}

export WRK_AUTH=$(printf '%s' 'ci-service:ci-service-secret' | base64)
export WRK_BODY='grant_type=client_credentials&scope=docs%3Aread'
load "client_credentials grants" "$issuer/token"
token=$(curl -fs -u ci-service:ci-service-secret -d "$WRK_BODY" "$issuer/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
export WRK_BODY="token=$token"
load "introspection" "$issuer/introspect"
echo "after the load: VmRSS $(mem VmRSS), peak VmHWM $(mem VmHWM)"
