#!/usr/bin/env bash
# One command: run the benchmark suite in its short mode three times and regenerate
# benches/RESULTS.md and benches/RESULTS.svg from criterion's estimates (the median of
# the runs). REPORT_RUNS=1 for a single quick pass; a filter argument narrows the benches
# (the report then shows n/a for the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${REPORT_RUNS:-3}
filter=("$@")
# With the tokio feature, as a tokio service would build it: ownsync then spends tokio's
# cooperative budget in every acquire, exactly as tokio::sync does, so the comparison is even.
for run in $(seq 1 "$runs"); do
    cargo bench -p ownsync-benches --features tokio --bench locks -- --quick --noplot --save-baseline "run$run" ${filter[@]+"${filter[@]}"}
done
# The cost of the `diagnostics` feature: the benches it could touch, built with it.
CARGO_TARGET_DIR=target/diagnostics cargo bench -p ownsync-benches --features tokio,diagnostics --bench locks -- --quick --noplot \
    '^(uncontended_lock/ownsync(_tracked)?|uncontended_semaphore/ownsync|contended_8_tasks/ownsync/8|contended_semaphore/ownsync)$'
# The tight loop, and tracked vs anonymous, with ownsync built without the `tokio` feature
# (default features).
CARGO_TARGET_DIR=target/default-features cargo bench -p ownsync-benches --bench locks -- --quick --noplot \
    '^(contended_(2|8|64)_tasks(_current_thread)?/ownsync/|uncontended_lock/ownsync(_tracked)?$)'
python3 benches/report.py "benches/report.sh"
echo "wrote benches/RESULTS.md and benches/RESULTS.svg"
