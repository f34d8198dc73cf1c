#!/usr/bin/env bash
# One command: run the benchmark suite in its short mode and regenerate
# benches/RESULTS.md and benches/RESULTS.svg from criterion's estimates.
set -euo pipefail
cd "$(dirname "$0")/.."
# With the tokio feature, as a tokio service would build it: ownsync then spends tokio's
# cooperative budget in every acquire, exactly as tokio::sync does, so the comparison is even.
cargo bench --features tokio --bench locks -- --quick --noplot
# The cost of the `diagnostics` feature: the benches it could touch, built with it.
CARGO_TARGET_DIR=target/diagnostics cargo bench --features tokio,diagnostics --bench locks -- --quick --noplot \
    '^(uncontended_lock/ownsync(_tracked)?|uncontended_semaphore/ownsync|contended_8_tasks/ownsync/8|contended_semaphore/ownsync)$'
python3 benches/report.py "benches/report.sh"
echo "wrote benches/RESULTS.md and benches/RESULTS.svg"
