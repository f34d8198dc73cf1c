//! `Event` (Trio's): a flag that tasks wait for, set once, for good.
//!
//! It is the counted core with no permits that closes when set: a queued wait is woken
//! by the close, and a wait after it returns at once, which is exactly what an event
//! needs, with the core's cancel-safety and waker handling and no code of its own. An
//! event has no holder, so nothing about it can be abandoned or broken.

use std::fmt;
use std::future::Future;

use crate::block::block_on;
use crate::core::{AbandonPolicy, SemCore};
use crate::error::PrimitiveKind;
use crate::owner::{Caller, caller_site};

/// A one-shot event: [`set`](Event::set) wakes every task [`wait`](Event::wait)ing for
/// it, and every later `wait` returns at once.
///
/// ```
/// use std::sync::Arc;
/// # futures::executor::block_on(async {
/// let ready = Arc::new(ownsync::Event::new());
/// let waiter = {
///     let ready = ready.clone();
///     async move { ready.wait().await; "went on" }
/// };
/// ready.set();
/// assert_eq!(waiter.await, "went on");
/// # });
/// ```
pub struct Event {
    core: SemCore,
}

impl Event {
    /// A new event, not set.
    ///
    /// ```
    /// assert!(!ownsync::Event::new().is_set());
    /// ```
    pub fn new() -> Self {
        Event { core: SemCore::new(0, PrimitiveKind::Event, None, AbandonPolicy::Break) }
    }

    /// Sets the event: wakes every waiting task; later waits return at once. Setting it
    /// again does nothing.
    ///
    /// ```
    /// let event = ownsync::Event::new();
    /// event.set();
    /// event.set();
    /// assert!(event.is_set());
    /// ```
    pub fn set(&self) {
        if !self.is_set() {
            self.core.close();
        }
    }

    /// Whether the event was set.
    ///
    /// ```
    /// let event = ownsync::Event::new();
    /// assert!(!event.is_set());
    /// event.set();
    /// assert!(event.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.core.is_closed()
    }

    /// Waits until the event is set (at once if it is). Cancel-safe: dropping the future
    /// just leaves the queue.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let event = ownsync::Event::new();
    /// event.set();
    /// event.wait().await; // returns at once
    /// # });
    /// ```
    #[track_caller]
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        let site = caller_site();
        async move {
            if !self.is_set() {
                // The core has no permits: this acquire ends only with the close of `set`.
                let _closed = self.core.acquire(1, Caller::Async, site).await;
            }
        }
    }

    /// [`wait`](Self::wait) from synchronous code, blocking the thread.
    ///
    /// ```
    /// let event = std::sync::Arc::new(ownsync::Event::new());
    /// let setter = std::thread::spawn({
    ///     let event = event.clone();
    ///     move || event.set()
    /// });
    /// event.blocking_wait();
    /// setter.join().unwrap();
    /// ```
    #[track_caller]
    pub fn blocking_wait(&self) {
        block_on(self.wait());
    }

    /// A snapshot of the event's state.
    ///
    /// ```
    /// let event = ownsync::Event::new();
    /// assert_eq!(event.statistics().waiters(), 0);
    /// ```
    pub fn statistics(&self) -> EventStatistics {
        let core = self.core.snapshot();
        EventStatistics { waiters: core.waiters, set: core.closed }
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.statistics();
        f.debug_struct("Event").field("set", &stats.set).field("waiters", &stats.waiters).finish()
    }
}

/// A snapshot of an [`Event`]'s state (Trio's `tasks_waiting`).
///
/// ```
/// let event = ownsync::Event::new();
/// event.set();
/// assert!(event.statistics().is_set());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventStatistics {
    waiters: usize,
    set: bool,
}

impl EventStatistics {
    /// How many tasks were waiting.
    pub fn waiters(&self) -> usize {
        self.waiters
    }
    /// Whether it was set.
    pub fn is_set(&self) -> bool {
        self.set
    }
}
