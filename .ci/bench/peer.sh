#!/usr/bin/env bash
# Measures another OAuth server already running (a peer: Ory Hydra,
# node-oidc-provider) as serve.sh measures Lanyard: wrk, 32 connections, 2
# threads, client_credentials grants for ci-service:ci-service-secret (scope
# docs:read) at TOKEN_URL, then introspection of one of them at
# INTROSPECT_URL; CPU per request of the process PID and of its PostgreSQL
# backends; its memory. README (Performance, How to measure) shows how the
# peers were set up.
#
#   .ci/bench/peer.sh NAME PID TOKEN_URL INTROSPECT_URL [DURATION]
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1 pid=$2 turl=$3 iurl=$4 duration=${5:-20s}
ticks() { awk '{print $14 + $15}' /proc/$1/stat 2>/dev/null || echo 0; }
pg_ticks() {
	local t=0 port bp
	for port in $(ss -tnpH 2>/dev/null | grep "pid=$pid," | awk '$5 ~ /:5432$/ {sub(/.*:/, "", $4); print $4}'); do
		for bp in $(pgrep -f "\($port\)" || true); do t=$((t + $(ticks "$bp"))); done
	done
	echo $t
}
hz=$(getconf CLK_TCK)
mem() { awk -v f="$1:" '$1 == f {print $2 / 1024 " MiB"}' /proc/$pid/status; }
load() {
	local what=$1 url=$2 s0 p0 out n
	wrk -t2 -c32 -d2s -s .ci/bench/post.lua "$url" >/dev/null
	s0=$(ticks $pid); p0=$(pg_ticks)
	out=$( { /usr/bin/time -f 'wrk-cpu %U %S' wrk -t2 -c32 -d"$duration" -s .ci/bench/post.lua "$url"; } 2>&1 )
	n=$(echo "$out" | awk '/requests in/ {print $1}')
	echo "--- $name $what, 32 connections, $duration"
	echo "$out" | grep -E 'Requests/sec|non-2xx'
	echo "$out" | awk -v n="$n" -v s="$(( $(ticks $pid) - s0 ))" -v p="$(( $(pg_ticks) - p0 ))" -v hz="$hz" '
		/^wrk-cpu/ { w = ($2 + $3) * 1e6 / n }
		END { printf "    CPU per request: server %.0f µs, PostgreSQL %.0f µs, wrk %.0f µs\n", s * 1e6 / hz / n, p * 1e6 / hz / n, w }'
}
echo "$name idle: VmRSS $(mem VmRSS)"
export WRK_AUTH=$(printf '%s' 'ci-service:ci-service-secret' | base64)
export WRK_BODY='grant_type=client_credentials&scope=docs%3Aread'
load "client_credentials grants" "$turl"
token=$(curl -fs -u ci-service:ci-service-secret -d "$WRK_BODY" "$turl" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
export WRK_BODY="token=$token"
load "introspection" "$iurl"
echo "$name after: VmRSS $(mem VmRSS), VmHWM $(mem VmHWM)"
