#!/usr/bin/env bash
# Throughput of ownsync's tower layer against tower's `ConcurrencyLimitLayer`, under
# `wrk` on loopback: the server example (benches/examples/server.rs) serves the same
# handler behind each (`/limited/ownsync`, `/limited/tower`, 16 in flight), and the runs
# alternate between the two (and which goes first), round after round, so that a noisy
# machine disturbs both alike. Prints each run's requests/s and, per handler duration, the mean of each layer
# and ownsync's as a percentage of tower's.
#
# Needs `wrk`. WRK_SECONDS (default 5) is each run's length, WRK_ROUNDS (default 5) the
# rounds, WRK_MS (default "0 2") the handler durations in ms, WRK_CONNECTIONS (default
# 64) the connections.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${WRK_SECONDS:-5}"
rounds="${WRK_ROUNDS:-5}"
durations="${WRK_MS:-0 2}"
connections="${WRK_CONNECTIONS:-64}"
port="${WRK_PORT:-38518}"
addr="127.0.0.1:${port}"

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed (apt-get install -y wrk)" >&2
    exit 2
fi

cargo build --release -p ownsync-benches --example server
target/release/examples/server --listen "$addr" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break
    sleep 0.1
done

declare -A total
for ms in $durations; do
    for layer in ownsync tower; do total["$layer $ms"]=0; done
    for round in $(seq "$rounds"); do
        # Who goes first alternates too, so neither always runs on a warmer (or busier) box.
        order="ownsync tower"
        if [ $((round % 2)) -eq 0 ]; then order="tower ownsync"; fi
        for layer in $order; do
            out="$(wrk -t2 -c"$connections" -d"${seconds}s" "http://${addr}/limited/${layer}?ms=${ms}")"
            rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
            if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
                echo "FAIL: ${layer} answered errors:"
                echo "$out"
                exit 1
            fi
            echo "ms=${ms} round ${round} ${layer}: ${rps} requests/s"
            total["$layer $ms"]="$(awk -v a="${total["$layer $ms"]}" -v b="$rps" 'BEGIN { print a + b }')"
        done
    done
done
echo
for ms in $durations; do
    awk -v o="${total["ownsync $ms"]}" -v t="${total["tower $ms"]}" -v n="$rounds" -v ms="$ms" 'BEGIN {
        printf "ms=%s: ownsync %.0f requests/s, tower %.0f requests/s (mean of %d): ownsync at %.1f%% of tower\n",
            ms, o / n, t / n, n, 100 * o / t
    }'
done
