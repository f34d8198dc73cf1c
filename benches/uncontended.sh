#!/usr/bin/env bash
# Instructions per uncontended acquire + release, counted by callgrind (deterministic,
# unlike time on a shared machine): benches/examples/uncontended.rs in a tracked task and
# as a plain thread. Each count is (instructions at 2N acquires - at N) / N, so start-up
# and shutdown cancel out. FEATURES selects ownsync's features (default: none). Needs
# valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
per=${UNCONTENDED_ACQUIRES:-100000}
features=${FEATURES:-}
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'
}
cargo build --quiet --release -p ownsync-benches --example uncontended ${features:+--features "$features"}
for primitive in semaphore limiter mutex; do
    for context in task thread; do
        extra=()
        [ "$context" = thread ] && extra=(thread)
        once=$(count "${CARGO_TARGET_DIR:-target}"/release/examples/uncontended "$primitive" "$per" "${extra[@]}")
        twice=$(count "${CARGO_TARGET_DIR:-target}"/release/examples/uncontended "$primitive" $((2 * per)) "${extra[@]}")
        echo "$primitive ($context, features: ${features:-default}): $(((twice - once) / per)) instructions per acquire + release"
    done
done
