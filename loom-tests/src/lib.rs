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

/// A waker that counts its wakes, for the models that check which waker was woken.
#[cfg(loom)]
pub struct Counter(pub loom::sync::atomic::AtomicUsize);

#[cfg(loom)]
impl std::task::Wake for Counter {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
    }
}

/// A fresh [`Counter`] and its waker.
#[cfg(loom)]
pub fn counting_waker() -> (std::sync::Arc<Counter>, std::task::Waker) {
    let counter = std::sync::Arc::new(Counter(loom::sync::atomic::AtomicUsize::new(0)));
    (counter.clone(), std::task::Waker::from(counter))
}
