//! Waking outside the lock: a [`WakeList`] collects the wakers a grant or a break
//! settles, to wake once the lock is released (tokio #5429), and [`run_all`] finishes a
//! loop whose calls may panic (every waiter of a break woken, every hold of an exit
//! settled). A leaf: it knows no primitive and no owner.

use std::task::Waker;

/// Wakers to wake once the lock is released. The first is kept inline, so a release
/// that hands off to one waiter (the contended common case) neither allocates nor moves
/// more than the one waker: a list of four inline wakers (96 bytes, moved into the
/// waking loop) cost the 8-task tight loop on 2 workers about 6% (measured).
#[derive(Default)]
pub(crate) struct WakeList {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl WakeList {
    #[inline]
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    /// How many wakers are queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Wakes them all. Call with no lock held. A waker whose `wake` panics does not stop
    /// the others from being woken; the first panic is resumed once all were. Inline,
    /// with the rare case out of line: it ends every contended release.
    #[inline(always)]
    pub(crate) fn wake_all(self) {
        let Some(first) = self.first else { return };
        if self.rest.is_empty() && !std::thread::panicking() {
            // One waker, and no unwinding under way that its panic would abort: nothing
            // else to wake if it panics, so its panic may go up as it is.
            return first.wake();
        }
        wake_each(first, self.rest);
    }
}

/// [`WakeList::wake_all`] of more than one waker, or during an unwind.
#[cold]
#[inline(never)]
fn wake_each(first: Waker, rest: Vec<Waker>) {
    run_all(std::iter::once(first).chain(rest), Waker::wake);
}

/// Calls `f` on every item even if some calls panic, then resumes the first panic (or,
/// if this thread is already unwinding, where a second panic would abort, drops it).
/// For the loops that must finish: waking every waiter of a break, abandoning every hold
/// of an exit. Costs nothing while nothing panics.
pub(crate) fn run_all<T>(items: impl IntoIterator<Item = T>, mut f: impl FnMut(T)) {
    let mut first_panic = None;
    for item in items {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item))) {
            first_panic.get_or_insert(panic);
        }
    }
    if let Some(panic) = first_panic.filter(|_| !std::thread::panicking()) {
        std::panic::resume_unwind(panic);
    }
}
