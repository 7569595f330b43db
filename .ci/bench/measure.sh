# Sourced by serve.sh and peer.sh: wrk against a running server whose process
# is $pid, for $duration, with the CPU per request of that process, of the
# PostgreSQL backends serving it and of wrk, and its memory from /proc.

mem() { awk -v f="$1:" '$1 == f {print $2 / 1024 " MiB"}' /proc/$pid/status; }

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

# load NAME WHAT URL: wrk, then requests/s, latency and CPU per request.
load() {
	local name=$1 what=$2 url=$3 s0 p0 out n
	wrk -t2 -c32 -d2s -s .ci/bench/post.lua "$url" >/dev/null # warm-up: the pool at full size
	s0=$(ticks $pid); p0=$(pg_ticks)
	out=$( { /usr/bin/time -f 'wrk-cpu %U %S' wrk -t2 -c32 -d"$duration" -s .ci/bench/post.lua "$url"; } 2>&1 )
	n=$(echo "$out" | awk '/requests in/ {print $1}')
	echo "--- $what, 32 connections, $duration"
	echo "$out" | grep -E 'Requests/sec|Latency|non-2xx'
	echo "$out" | awk -v name="$name" -v n="$n" -v s="$(( $(ticks $pid) - s0 ))" -v p="$(( $(pg_ticks) - p0 ))" -v hz="$hz" '
		/^wrk-cpu/ { w = ($2 + $3) * 1e6 / n }
		END { printf "    CPU per request: %s %.0f µs, PostgreSQL %.0f µs, wrk %.0f µs\n", name, s * 1e6 / hz / n, p * 1e6 / hz / n, w }'
}

# measure NAME TOKEN_URL INTROSPECT_URL: memory at rest, client_credentials
# grants for ci-service (scope docs:read), introspection of one of their
# tokens, and the memory after.
measure() {
	local name=$1 turl=$2 iurl=$3 token
	echo "idle: VmRSS $(mem VmRSS)"
	export WRK_AUTH=$(printf '%s' 'ci-service:ci-service-secret' | base64)
	export WRK_BODY='grant_type=client_credentials&scope=docs%3Aread'
	load "$name" "client_credentials grants" "$turl"
	token=$(curl -fs -u ci-service:ci-service-secret -d "$WRK_BODY" "$turl" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
	export WRK_BODY="token=$token"
	load "$name" "introspection" "$iurl"
	echo "after the load: VmRSS $(mem VmRSS), peak VmHWM $(mem VmHWM)"
}
