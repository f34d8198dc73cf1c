//! Blocking callers: `blocking_lock` and friends do not get a second wait loop.
//! [`block_on`] polls the same acquire future with a waker that wakes the thread, which
//! spins, then yields, then sleeps on its own signal (kept between waits).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Wake, Waker};

use crate::loom::{
    AtomicUsize, Condvar, Mutex, SPIN_LIMIT, YIELD_LIMIT, owned_thread_local, spin_hint, yield_hint,
};

/// Wakes a blocked thread: announces the wake in a word it spins on, and signals the
/// condvar only if the thread went to sleep on it. (A condvar rather than park/unpark:
/// loom 0.7 loses an unpark that follows a store the parked thread has not yet read, and
/// the models must run this very code.)
///
/// A wake of a thread that is still spinning is one swap: the waker takes no lock and
/// signals nothing. In a strict hand-off between two threads that is every wake, and the
/// lock the waker used to take sat in the line the spinning thread was reading.
pub(crate) struct ThreadSignal {
    /// [`AWAKE`], [`NOTIFIED`] or [`SLEEPING`]: only the waiting thread moves it away
    /// from `NOTIFIED`, and only a waker moves it there.
    state: AtomicUsize,
    sleeping: Mutex<()>,
    wakeup: Condvar,
}

/// [`ThreadSignal::state`]: no wake pending, the thread runs or spins.
const AWAKE: usize = 0;
/// A wake is pending.
const NOTIFIED: usize = 1;
/// The thread sleeps (or is about to, holding `sleeping`) on `wakeup`.
const SLEEPING: usize = 2;

impl Wake for ThreadSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.swap(NOTIFIED, Ordering::Release) == SLEEPING {
            // The sleeper set `SLEEPING` under the lock and holds it until it waits on
            // the condvar: taking it orders this signal after the sleeper began to wait.
            drop(self.sleeping.lock());
            self.wakeup.notify_one();
        }
    }
}

impl ThreadSignal {
    pub(crate) fn new() -> Self {
        ThreadSignal { state: AtomicUsize::new(AWAKE), sleeping: Mutex::new(()), wakeup: Condvar::new() }
    }

    /// Consumes a pending wake. Only the waiting thread leaves `NOTIFIED`, so a load and
    /// a store suffice: a wake landing between them was issued before the re-poll that
    /// follows, which therefore sees what it announced.
    pub(crate) fn take_wake(&self) -> bool {
        let woken = self.state.load(Ordering::Acquire) == NOTIFIED;
        if woken {
            self.state.store(AWAKE, Ordering::Relaxed);
        }
        woken
    }

    /// Waits for a wake: spins briefly, then yields a while, then sleeps.
    ///
    /// A strict FIFO hand-off between threads grants the lock to a waiter, which must run
    /// before anyone else may have it. Asleep, it needs a futex wake (several µs on a
    /// VM), and its waker, re-locking at once, queues behind it: if the waker sleeps
    /// too before the other wakes, every hand-off costs a sleep and a wake (a convoy:
    /// 2-4 µs per lock between two threads, measured). Yielding keeps a waiter awake
    /// through that window without holding a CPU that the grantee needs: with more
    /// threads than CPUs a spin does (8 threads on 2 CPUs, `examples/blocking_handoff.rs`:
    /// 12 µs per lock with the spin alone, 6 µs with one 4 times longer, 2.5 µs with the
    /// yields).
    fn wait(&self) {
        for step in 0..SPIN_LIMIT + YIELD_LIMIT {
            if self.take_wake() {
                return;
            }
            if step < SPIN_LIMIT { spin_hint() } else { yield_hint() }
        }
        let mut guard = self.sleeping.lock();
        // A wake from here on finds `SLEEPING` and signals. One that came first left
        // `NOTIFIED` (only this thread sets `SLEEPING`), so the exchange fails and the
        // loop below takes that wake at once. A condvar may wake spuriously: the loop
        // sleeps again until a wake is there to take.
        let _ = self.state.compare_exchange(AWAKE, SLEEPING, Ordering::Acquire, Ordering::Relaxed);
        while !self.take_wake() {
            guard = self.wakeup.wait(guard);
        }
    }
}

owned_thread_local! {
    /// This thread's signal and a waker for it, kept between blocking waits so that a
    /// wait allocates nothing. Taken out while in use: a nested wait (a waker that runs
    /// a blocking call) makes its own.
    static THREAD_SIGNAL: Cell<Option<(Arc<ThreadSignal>, Waker)>> = Cell::new(None);
}

/// This thread's signal for one blocking wait, given back to the thread when dropped
/// (also on unwind). A wake left over from an earlier wait is harmless: the next wait
/// takes it, polls, finds nothing ready and waits again.
struct SignalLease(Option<(Arc<ThreadSignal>, Waker)>);

impl SignalLease {
    fn take() -> Self {
        // `try_with`: during the thread's exit, when its locals are gone, make one.
        let kept = THREAD_SIGNAL.try_with(Cell::take).ok().flatten();
        SignalLease(Some(kept.unwrap_or_else(|| {
            let signal = Arc::new(ThreadSignal::new());
            let waker = Waker::from(signal.clone());
            (signal, waker)
        })))
    }
    fn signal(&self) -> &ThreadSignal {
        &self.0.as_ref().expect("a lease holds its signal until dropped").0
    }
    fn waker(&self) -> &Waker {
        &self.0.as_ref().expect("a lease holds its signal until dropped").1
    }
}

impl Drop for SignalLease {
    fn drop(&mut self) {
        let kept = self.0.take();
        // Gone with the thread's locals (an exit under way): dropped here instead.
        let _ = THREAD_SIGNAL.try_with(|cell| cell.set(kept));
    }
}

/// Runs `future` to completion on this thread: the blocking entry points' one wait loop.
/// After a `Pending` it spins briefly on the wake flag before sleeping, so a hand-off to
/// a thread that is still running costs no sleep/wake round trip. The first poll already
/// has the thread's waker (kept between waits), so a wait that queues does so once.
#[track_caller]
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    crate::runtime::assert_can_block();
    let mut future = pin!(future);
    let lease = SignalLease::take();
    let mut cx = Context::from_waker(lease.waker());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        lease.signal().wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that went to sleep on its signal is woken by a wake that finds it
    /// sleeping (and only then signals the condvar).
    #[test]
    fn a_wake_reaches_a_thread_asleep_on_its_signal() {
        let signal = Arc::new(ThreadSignal::new());
        let waker = Waker::from(signal.clone());
        let observer = signal.clone();
        let woke = std::thread::spawn(move || {
            // Waits for the event "asleep" (no timing): the sleeper set `SLEEPING`.
            while observer.state.load(Ordering::Acquire) != SLEEPING {
                std::thread::yield_now();
            }
            waker.wake();
        });
        signal.wait();
        woke.join().unwrap();
        assert_eq!(signal.state.load(Ordering::Acquire), AWAKE, "the wake was consumed");
    }

    /// A wake of a thread that is not asleep only leaves the wake pending: the next
    /// wait returns at once, and one after that would wait again.
    #[test]
    fn a_wake_before_the_wait_is_kept_for_it() {
        let signal = Arc::new(ThreadSignal::new());
        Waker::from(signal.clone()).wake_by_ref();
        assert_eq!(signal.state.load(Ordering::Acquire), NOTIFIED);
        signal.wait();
        assert!(!signal.take_wake(), "consumed by the wait");
    }

    /// A future that is ready on its second poll and keeps each waker it was polled with.
    struct ReadyOnSecondPoll(Vec<Waker>);

    impl Future for ReadyOnSecondPoll {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.push(cx.waker().clone());
            if self.0.len() == 2 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Blocking waits on one thread share its signal (no allocation per wait), and a wake
    /// left over from an earlier wait only costs the next one an extra poll.
    #[test]
    fn blocking_waits_reuse_the_threads_signal_and_survive_a_stale_wake() {
        let mut first = ReadyOnSecondPoll(Vec::new());
        block_on(&mut first);
        let mut second = ReadyOnSecondPoll(Vec::new());
        block_on(&mut second);
        assert!(first.0[0].will_wake(&second.0[0]), "the same signal's waker");
        // A stale wake (the first wait is over) is pending for the next wait...
        first.0[0].wake_by_ref();
        let (tx, rx) = futures::channel::oneshot::channel();
        let sender = std::thread::spawn(move || tx.send(7).unwrap());
        // ...which still returns only what it waited for.
        assert_eq!(block_on(rx).unwrap(), 7);
        sender.join().unwrap();
    }

    /// A blocking wait inside another's poll (a waker or a drop that blocks) gets a
    /// signal of its own: the outer wait's wakes are not taken by it.
    #[test]
    fn a_nested_blocking_wait_has_its_own_signal() {
        let mut outer_waker = None;
        let mut inner_waker = None;
        block_on(std::future::poll_fn(|cx| {
            if outer_waker.is_some() {
                return Poll::Ready(());
            }
            outer_waker = Some(cx.waker().clone());
            block_on(std::future::poll_fn(|inner| {
                inner_waker = Some(inner.waker().clone());
                Poll::Ready(())
            }));
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
        assert!(!outer_waker.unwrap().will_wake(&inner_waker.unwrap()));
    }

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let (tx, rx) = futures::channel::oneshot::channel();
        let sender = std::thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(block_on(rx).unwrap(), 7);
        sender.join().unwrap();
    }
}
