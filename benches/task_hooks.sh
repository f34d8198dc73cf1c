#!/usr/bin/env bash
# Instructions per spawned task and per poll, with `ownsync::tokio::track_all`'s hooks
# and without, counted by callgrind (benches/examples/task_hooks.rs; deterministic,
# unlike time on a shared machine). Each count is (instructions at 2N - at N) / N.
# Builds with `--cfg tokio_unstable` in its own target dir. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
per=${TASK_HOOKS_COUNT:-100000}
export RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/tokio-unstable
cargo build --quiet --release -p ownsync-benches --example task_hooks --features tokio
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'
}
for shape in spawn poll; do
    for hooks in plain track_all; do
        once=$(count target/tokio-unstable/release/examples/task_hooks "$shape" "$hooks" "$per")
        twice=$(count target/tokio-unstable/release/examples/task_hooks "$shape" "$hooks" $((2 * per)))
        echo "$shape, $hooks: $(((twice - once) / per)) instructions per $([ "$shape" = spawn ] && echo task || echo poll)"
    done
done
