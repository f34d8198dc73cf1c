#!/usr/bin/env bash
# Instructions per uncontended acquire + release in a tokio task, counted by callgrind
# (deterministic, unlike time on a shared machine): benches/examples/uncontended_tokio.rs,
# one task on a current-thread runtime re-taking a lock or a permit nobody else wants,
# tokio's scheduling (a yield each time the task's budget is spent) included. Each count
# is (instructions at 2N acquires - at N) / N, so start-up and shutdown cancel out.
# Built without and with the `tokio` feature; the peers (futures-intrusive, maitake,
# tokio's Mutex) in the same program. Anonymous: a plain `tokio::spawn`ed task (with the
# `tokio` feature each hold is anonymous and counted, identified by the task id);
# tracked: an `ownsync::tracked` task, each hold registered to its owner. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
per=${UNCONTENDED_ACQUIRES:-200000}
target=${CARGO_TARGET_DIR:-target}
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'
}
peers=(futures-intrusive maitake tokio)
for features in default tokio; do
    flags=()
    [ "$features" = tokio ] && flags=(--features tokio)
    cargo build --quiet --release -p ownsync-benches --example uncontended_tokio "${flags[@]}"
    cp "$target/release/examples/uncontended_tokio" "$target/release/examples/uncontended_tokio-$features"
    cases=(mutex-anonymous mutex-tracked semaphore-anonymous semaphore-tracked)
    [ "$features" = default ] && cases+=("${peers[@]}")
    for case in "${cases[@]}"; do
        once=$(count "$target/release/examples/uncontended_tokio-$features" "$case" "$per")
        twice=$(count "$target/release/examples/uncontended_tokio-$features" "$case" $((2 * per)))
        label=$case
        case " ${peers[*]} " in *" $case "*) ;; *) label="$case ($features features)" ;; esac
        echo "$label: $(((twice - once) / per)) instructions per acquire + release"
    done
done
