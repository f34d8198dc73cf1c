#!/usr/bin/env python3
"""Turns criterion's estimates (target/criterion) into benches/RESULTS.md and
benches/RESULTS.svg: medians, ratios against the peers, and DESIGN.md section 5's
targets marked met or not. Run through benches/report.sh."""

import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "criterion")
# The same benches built with the `diagnostics` feature (report.sh runs them there).
DIAGNOSTICS_CRITERION = os.path.join(ROOT, "target", "diagnostics", "criterion")


def median_ns(group, bench, base=None):
    path = os.path.join(base or CRITERION, group, bench, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def fmt(ns):
    if ns is None:
        return "n/a"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def ratio(a, b):
    return None if a is None or b is None else a / b


# (label, ours, peer, limit): ours/peer must be <= limit to meet the target.
TARGETS = [
    ("uncontended lock: no slower than tokio", ("uncontended_lock", "ownsync"), ("uncontended_lock", "tokio"), 1.0),
    ("uncontended lock: within 1.3x of async-lock", ("uncontended_lock", "ownsync"), ("uncontended_lock", "async_lock"), 1.3),
    ("uncontended lock: within 2x of parking_lot", ("uncontended_lock", "ownsync"), ("uncontended_lock", "parking_lot"), 2.0),
    ("contended 2 tasks: at least tokio's throughput", ("contended_2_tasks", "ownsync/2"), ("contended_2_tasks", "tokio/2"), 1.0),
    ("contended 8 tasks: at least tokio's throughput", ("contended_8_tasks", "ownsync/8"), ("contended_8_tasks", "tokio/8"), 1.0),
    ("contended 64 tasks: at least tokio's throughput", ("contended_64_tasks", "ownsync/64"), ("contended_64_tasks", "tokio/64"), 1.0),
    ("contended 8 tasks, medium section: at least tokio's", ("contended_8_tasks_medium", "ownsync/8"), ("contended_8_tasks_medium", "tokio/8"), 1.0),
    ("Semaphore acquire+release: at least tokio's", ("uncontended_semaphore", "ownsync"), ("uncontended_semaphore", "tokio"), 1.0),
    ("Semaphore acquire_many(3): at least tokio's", ("uncontended_semaphore", "ownsync_many_3"), ("uncontended_semaphore", "tokio_many_3"), 1.0),
    ("Semaphore contended (8 tasks, 1 permit): at least tokio's", ("contended_semaphore", "ownsync"), ("contended_semaphore", "tokio"), 1.0),
    ("contended blocking_lock, 2 threads: 10x tokio's throughput", ("contended_blocking_2_threads", "ownsync"), ("contended_blocking_2_threads", "tokio"), 0.1),
    ("tracked hold vs anonymous hold (tracking cost under 10%)", ("uncontended_lock", "ownsync_tracked"), ("uncontended_lock", "ownsync"), 1.1),
    ("RwLock read, uncontended: at least tokio's", ("uncontended_rwlock", "ownsync_read"), ("uncontended_rwlock", "tokio_read"), 1.0),
    ("RwLock write, uncontended: at least tokio's", ("uncontended_rwlock", "ownsync_write"), ("uncontended_rwlock", "tokio_write"), 1.0),
    ("RwLock 8 tasks, 4:1 read/write: at least tokio's", ("contended_rwlock_8_tasks_4_to_1", "ownsync"), ("contended_rwlock_8_tasks_4_to_1", "tokio"), 1.0),
]

# Ratios shown for information: no target in DESIGN.md.
PAIRINGS = [
    ("CapacityLimiter vs Semaphore, try_acquire+release", ("uncontended_semaphore", "ownsync_limiter"), ("uncontended_semaphore", "ownsync_try_acquire")),
    ("CapacityLimiter vs Semaphore, contended", ("contended_semaphore", "ownsync_limiter"), ("contended_semaphore", "ownsync")),
    ("contended blocking_lock vs parking_lot", ("contended_blocking_2_threads", "ownsync"), ("contended_blocking_2_threads", "parking_lot")),
    ("try_lock vs tokio's", ("uncontended_lock", "ownsync_try_lock"), ("uncontended_lock", "tokio_try_lock")),
    ("uncontended blocking_lock vs tokio's", ("uncontended_lock", "ownsync_blocking_lock"), ("uncontended_lock", "tokio_blocking_lock")),
    ("owned guard handed over vs plain (hand-over cost)", ("hand_over", "owned_guard_handed"), ("hand_over", "owned_guard")),
    ("owned permit handed over vs plain", ("hand_over", "owned_permit_handed"), ("hand_over", "owned_permit")),
]

# Benches run again with the `diagnostics` feature: its cost where it could show.
DIAGNOSTICS = [
    ("uncontended_lock", "ownsync"),
    ("uncontended_lock", "ownsync_tracked"),
    ("uncontended_semaphore", "ownsync"),
    ("contended_8_tasks", "ownsync/8"),
    ("contended_semaphore", "ownsync"),
]

ROWS = [
    ("uncontended_lock", ["ownsync", "ownsync_tracked", "tokio", "async_lock", "parking_lot", "std"]),
    ("uncontended_lock", ["ownsync_try_lock", "tokio_try_lock", "ownsync_blocking_lock", "tokio_blocking_lock"]),
    ("uncontended_semaphore", ["ownsync", "tokio", "async_lock", "ownsync_many_3", "tokio_many_3",
                               "ownsync_try_acquire", "ownsync_limiter"]),
    ("contended_2_tasks", ["ownsync/2", "tokio/2", "async_lock/2"]),
    ("contended_8_tasks", ["ownsync/8", "tokio/8", "async_lock/8"]),
    ("contended_64_tasks", ["ownsync/64", "tokio/64", "async_lock/64"]),
    ("contended_8_tasks_medium", ["ownsync/8", "tokio/8", "async_lock/8"]),
    ("contended_semaphore", ["ownsync", "tokio", "async_lock", "ownsync_limiter"]),
    ("contended_blocking_2_threads", ["ownsync", "tokio", "parking_lot", "std"]),
    ("uncontended_rwlock", ["ownsync_read", "tokio_read", "ownsync_write", "tokio_write"]),
    ("contended_rwlock_8_tasks_4_to_1", ["ownsync", "tokio"]),
    ("hand_over", ["owned_guard", "owned_guard_handed", "owned_permit", "owned_permit_handed"]),
]


# Why the targets that are missed are missed: structural reasons, true whatever one run's
# numbers say (the table above has those).
NOT_MET = """## About the targets that are close or missed

- **Tracking cost.** A tracked hold records itself in its owner's local hold list: no
  lock, no atomic, no reference count, and re-taking the primitive it released last
  reuses its entry. That costs about 3-4 ns over an anonymous hold here, which is 15-25%
  of a 17 ns lock. DESIGN.md section 4's lazy registration (the holder recorded in the
  primitive, linked to its owner only when someone waits) would not be cheaper. It needs
  an ordered store-then-load between the holder word and the waiter flag on every lock,
  a fence or a locked instruction, which alone costs about as much. Or it needs the
  holder packed into the state word.
- **Contended ratios.** The async hand-off is FIFO, the same protocol as tokio's. The
  contended ratios move by several percent from run to run, so a ratio near 1.0 can land
  on either side.
- **Contended, round 2.** Side by side on the same machine and day (criterion, 3 s per
  bench, 3 rounds each), 8 tasks on a mutex measured about 0.97x tokio for round 1's
  code and 1.01-1.03x for this round's: the 2b bookkeeping on the parking path (who
  waits, for the self-wait diagnosis) and the waker handling the outside review asked
  for (wakers dropped outside the lock, every wake run even if one panics) cost a few
  percent of a contended hand-off. The RwLock's 4:1 mix is at about 1.02x tokio's.
- **Contended `blocking_lock`** swings by 5x between runs on this VM (1.5-6 µs per lock
  for ownsync, 1.6-16 µs for tokio), and round 1's own binary measured 3-6 µs side by
  side today against 274 ns in round 1's report: a cross-core wake on this machine now
  costs microseconds, which the spin-then-park hand-off cannot hide. The ratio in the
  table is that noise, not a change in the code.
- **`blocking_lock` against parking_lot** (no target, in the pairings). A strict FIFO
  hand-off between two threads costs a cross-core wake per lock, where parking_lot lets
  the releasing thread take the lock back. Coming within 3x of it needs DESIGN.md's
  opt-in eventual-fairness (barging) mode, which is not built."""


def sizes():
    """The table tests/sizes.rs prints."""
    run = subprocess.run(["cargo", "test", "-q", "--release", "--test", "sizes", "--", "--nocapture"],
                         cwd=ROOT, capture_output=True, text=True)
    table = [line for line in run.stdout.splitlines() if line and not line.startswith(("running", "test ", "."))]
    table = [line for line in table if not line.startswith("test result")]
    if not table:
        return []
    header, *rows = [line.split() for line in table]
    out = ["| type | ownsync | tokio | async-lock |", "|---|---|---|---|"]
    out += [f"| {' '.join(r[:-3])} | {r[-3]} B | {r[-2]} B | {r[-1]} B |" for r in rows]
    return out


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "benches/report.sh"
    lines = [
        "# Benchmark results",
        "",
        f"Measured {datetime.date.today().isoformat()} with `{command}` "
        f"(criterion, `--quick`, release profile, feature `tokio` on so both sides spend tokio's coop budget) on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.system()}. Medians; lower is better. "
        "Machines like this are noisy: compare ratios within one run.",
        "",
        f"rustc: {subprocess.run(['rustc', '--version'], capture_output=True, text=True).stdout.strip()}",
        "",
        "## DESIGN.md section 5 targets",
        "",
        "| target | ratio (ours / peer) | limit | met |",
        "|---|---|---|---|",
    ]
    chart = []
    for label, ours, peer, limit in TARGETS:
        r = ratio(median_ns(*ours), median_ns(*peer))
        met = "n/a" if r is None else ("yes" if r <= limit else "**no**")
        lines.append(f"| {label} | {'n/a' if r is None else f'{r:.2f}'} | {limit} | {met} |")
        if r is not None:
            chart.append((label, r, limit))
    per_waiter = []
    for n in (10, 1000, 100000):
        total = median_ns("break_all_waiters", str(n))
        if total is not None:
            per_waiter.append((n, total, total / n))
    if per_waiter:
        worst = max(p for _, _, p in per_waiter)
        lines.append(f"| break: under 1 µs per waiter | {worst:.1f} ns per waiter (worst) | 1000 ns | "
                     f"{'yes' if worst < 1000 else '**no**'} |")
    lines += ["", "Per-iteration medians in the contended groups are total time / lock+unlock pairs "
              "(so lower is more throughput).", "", NOT_MET, "", "## Other ratios (no target)", "",
              "| pairing | ratio |", "|---|---|"]
    for label, ours, peer in PAIRINGS:
        r = ratio(median_ns(*ours), median_ns(*peer))
        lines.append(f"| {label} | {'n/a' if r is None else f'{r:.2f}'} |")
    lines += ["", "## The `diagnostics` feature (same benches, built with it; report.sh)", "",
              "| bench | without | with | ratio |", "|---|---|---|---|"]
    for group, bench in DIAGNOSTICS:
        off, on = median_ns(group, bench), median_ns(group, bench, DIAGNOSTICS_CRITERION)
        r = ratio(on, off)
        lines.append(f"| {group}/{bench} | {fmt(off)} | {fmt(on)} | {'n/a' if r is None else f'{r:.2f}'} |")
    size_table = sizes()
    if size_table:
        lines += ["", "## Sizes (`cargo test --test sizes -- --nocapture`)", ""] + size_table
    lines += ["", "## Medians", ""]
    for group, benches in ROWS:
        lines += [f"### {group}", "", "| bench | median |", "|---|---|"]
        for bench in benches:
            lines.append(f"| {bench} | {fmt(median_ns(group, bench))} |")
        lines.append("")
    lines += ["### break_all_waiters (owner exit until every parked waiter has its error)", "",
              "| waiters | total | per waiter |", "|---|---|---|"]
    for n, total, per in per_waiter:
        lines.append(f"| {n} | {fmt(total)} | {fmt(per)} |")
    lines += ["", "![ratios](RESULTS.svg)", ""]
    with open(os.path.join(ROOT, "benches", "RESULTS.md"), "w") as f:
        f.write("\n".join(lines))
    write_svg(chart)


def write_svg(chart):
    width, bar_h, gap, left = 900, 22, 10, 420
    scale = (width - left - 60) / max([2.0] + [max(r, l) for _, r, l in chart])
    height = len(chart) * (bar_h + gap) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="16" font-weight="bold">ours / peer (bar) vs the limit (line); lower is better</text>']
    for i, (label, r, limit) in enumerate(chart):
        y = 30 + i * (bar_h + gap)
        color = "#3a7d44" if r <= limit else "#b03a2e"
        out.append(f'<text x="10" y="{y + 15}">{label}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{r * scale:.1f}" height="{bar_h}" fill="{color}"/>')
        out.append(f'<line x1="{left + limit * scale:.1f}" x2="{left + limit * scale:.1f}" y1="{y - 3}" y2="{y + bar_h + 3}" stroke="black" stroke-width="2"/>')
        out.append(f'<text x="{left + r * scale + 5:.1f}" y="{y + 15}">{r:.2f}</text>')
    out.append("</svg>")
    with open(os.path.join(ROOT, "benches", "RESULTS.svg"), "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
