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
. .ci/bench/measure.sh
echo "$name"
measure "$name" "$turl" "$iurl"
