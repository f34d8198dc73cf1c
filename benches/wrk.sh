#!/usr/bin/env bash
# Drives the server example (benches/examples/server.rs) with `wrk`, a load generator nobody here
# wrote, on loopback and bounded in time: first well-behaved requests only, then a mix
# with the misbehaving routes (leaked tokens, panics, work past the deadline, a ledger
# that breaks). Afterwards it reads /stats and fails unless the limiter's capacity is
# whole (nothing borrowed, nobody waiting) and no request timed out (hung). Prints wrk's
# requests/s and latency percentiles.
#
# Needs `wrk` (Debian package `wrk`). WRK_SECONDS sets each run's length (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${WRK_SECONDS:-5}"
port="${WRK_PORT:-38517}"
addr="127.0.0.1:${port}"

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed (apt-get install -y wrk)" >&2
    exit 2
fi

cargo build --release -p ownsync-benches --example server
target/release/examples/server --listen "$addr" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

# GET over bash's /dev/tcp: the body of one request (used for readiness and /stats).
get() {
    exec 3<>"/dev/tcp/127.0.0.1/${port}" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$addr" >&3
    sed '1,/^\r$/d' <&3
    exec 3<&-
}
for _ in $(seq 100); do
    get /stats >/dev/null 2>&1 && break
    sleep 0.1
done

failed=0
run() {
    local label="$1"
    shift
    echo
    echo "== ${label}"
    local out
    out="$(wrk --latency --timeout 5s -t2 -c64 -d"${seconds}s" "$@" "http://${addr}/work?ms=1")"
    echo "$out"
    if grep -q "timeout [1-9]" <<<"$out"; then
        echo "FAIL: some requests timed out (hung)"
        failed=1
    fi
}
run "well-behaved: /work?ms=1, 64 connections"
run "mixed with misbehaving routes, 64 connections" -s benches/wrk-mixed.lua

# The last responses may still be finishing: capacity must be whole within a second.
stats=""
for _ in $(seq 20); do
    stats="$(get /stats)"
    grep -q "borrowed=0 waiting=0" <<<"$stats" && break
    sleep 0.05
done
echo
echo "== /stats afterwards: ${stats}"
if ! grep -q "total=4 borrowed=0 waiting=0" <<<"$stats"; then
    echo "FAIL: the limiter's capacity is not whole"
    failed=1
fi
if [ "$failed" -ne 0 ]; then
    exit 1
fi
echo "wrk load test passed: no request hung, capacity is whole"
