#!/usr/bin/env bash
# Instructions per contended hand-off, counted by callgrind (deterministic, unlike time
# on a shared machine): two tasks handing one mutex to each other on a current-thread
# runtime (benches/examples/handoff.rs), tokio's scheduling included. Each count is
# (instructions at 2N locks per task - at N) / 2N, so start-up and shutdown cancel out.
# ownsync is built with default features and then with `tokio`; tokio's and
# futures-intrusive's mutexes do not depend on that. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
per=${HANDOFF_LOCKS:-50000}
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'
}
for features in default tokio; do
    if [ "$features" = default ]; then
        cargo build --quiet --release -p ownsync-benches --example handoff
        mutexes="ownsync tokio futures-intrusive"
    else
        cargo build --quiet --release -p ownsync-benches --example handoff --features tokio
        mutexes="ownsync"
    fi
    for mutex in $mutexes; do
        once=$(count target/release/examples/handoff "$mutex" 2 "$per" current-thread)
        twice=$(count target/release/examples/handoff "$mutex" 2 $((2 * per)) current-thread)
        label=$mutex
        [ "$mutex" = ownsync ] && label="ownsync ($features features)"
        echo "$label: $(((twice - once) / (2 * per))) instructions per lock"
    done
done
