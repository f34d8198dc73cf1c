#!/usr/bin/env bash
# Instructions per uncontended lock + unlock in a tokio task, counted by callgrind (deterministic, unlike
# time on a shared machine): one task re-locking a mutex nobody else wants, on a
# current-thread runtime (benches/examples/handoff.rs with one task), tokio's scheduling
# (a yield each time the task's budget is spent) included. As in handoff.sh, each count
# is (instructions at 2N locks - at N) / N, so start-up and shutdown cancel out. With
# the `tokio` feature the task is an untracked tokio task: each hold is anonymous and
# counted (`statistics().anonymous_holds()`). Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
per=${UNCONTENDED_LOCKS:-200000}
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'
}
for features in default tokio; do
    if [ "$features" = default ]; then
        cargo build --quiet --release -p ownsync-benches --example handoff
    else
        cargo build --quiet --release -p ownsync-benches --example handoff --features tokio
    fi
    for mutex in ownsync tokio; do
        [ "$features" = tokio ] && [ "$mutex" = tokio ] && continue
        once=$(count target/release/examples/handoff "$mutex" 1 "$per" current-thread)
        twice=$(count target/release/examples/handoff "$mutex" 1 $((2 * per)) current-thread)
        label=$mutex
        [ "$mutex" = ownsync ] && label="ownsync ($features features)"
        echo "$label: $(((twice - once) / per)) instructions per uncontended lock + unlock"
    done
done
