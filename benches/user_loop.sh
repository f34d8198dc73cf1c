#!/usr/bin/env bash
# The figures a user's own loop sees (benches/examples/user_loop.rs: every peer in one
# process, one 2-worker runtime built once, spawned tasks, the `tokio` feature on),
# written into benches/RESULTS.md between its `user_loop` markers. About a minute at the
# default 9 rounds on a 2-core machine. ROUNDS and SCALE (percent of the loop lengths)
# override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-9}
scale=${SCALE:-100}
cargo build --quiet --release -p ownsync-benches --features tokio --example user_loop
table=$(target/release/examples/user_loop "$rounds" "$scale")
header="Measured $(date -u +%Y-%m-%d) with \`benches/user_loop.sh\` ($rounds rounds, scale $scale%) on $(uname -m), $(nproc) CPUs, $(rustc --version | cut -d' ' -f1-2)."
python3 - "$header" "$table" <<'PY'
import sys, re
header, table = sys.argv[1], sys.argv[2]
path = "benches/RESULTS.md"
text = open(path).read()
begin, end = "<!-- user_loop begin -->", "<!-- user_loop end -->"
block = f"{begin}\n{header}\n\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
echo "$table"
