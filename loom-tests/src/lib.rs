//! Loom models of ownsync's races live in `tests/`; this is what they share.
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`.

/// Checks `f` under loom, with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says.
#[cfg(loom)]
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}
