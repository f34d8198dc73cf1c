#!/usr/bin/env bash
# One command: run the benchmark suite in its short mode and regenerate
# benches/RESULTS.md and benches/RESULTS.svg from criterion's estimates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench locks -- --quick --noplot
python3 benches/report.py "benches/report.sh"
echo "wrote benches/RESULTS.md and benches/RESULTS.svg"
