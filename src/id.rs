//! The identity of an owner ([`OwnerId`]) and of a place in the code ([`Site`]): small
//! `Copy` values every layer names, so this file imports nothing of the crate.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a hold was taken: the user's call of the acquire (`#[track_caller]`), if known.
pub(crate) type Site = Option<&'static std::panic::Location<'static>>;

/// The site of the acquire being called: call it first thing in a `#[track_caller]`
/// entry point (an `async fn` cannot be one: the entry points return their future).
#[track_caller]
#[inline]
pub(crate) fn caller_site() -> Site {
    Some(std::panic::Location::caller())
}

/// The identity of an owner: a tracked task or a thread.
///
/// Small, `Copy`, and never reused within a process. Displays as `task#17`, or as
/// `thread#3 (main)` for a named thread that is still alive. With the `tokio` feature, a
/// hold taken by an untracked tokio task is attributed to `tokio-task#N` (tokio's own task
/// id): an identity for `WouldDeadlock` checks and messages, never an owner that exits.
///
/// ```
/// let me = ownsync::current_owner();
/// assert!(me.is_thread());
/// assert!(me.to_string().starts_with("thread#"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(pub(super) u64);

pub(super) const THREAD_BIT: u64 = 1 << 63;
/// A runtime's own task id (the `tokio` feature): an identity, never an owner that exits.
pub(super) const RUNTIME_BIT: u64 = 1 << 62;
/// A borrower id that names no owner (an anonymous borrow): never an owner that exits.
pub(super) const ANONYMOUS_BIT: u64 = 1 << 61;
pub(super) static NEXT_TASK: AtomicU64 = AtomicU64::new(1);
pub(super) static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
/// Names of live named threads, for `Display` of their ids.
pub(super) static THREAD_NAMES: std::sync::Mutex<BTreeMap<u64, Arc<str>>> =
    std::sync::Mutex::new(BTreeMap::new());

impl OwnerId {
    /// A fresh id owned by nobody: the borrower of an anonymous (untracked async) borrow,
    /// or of one `acquire()` call among several of one owner's sub-futures.
    pub(crate) fn next_anonymous() -> Self {
        OwnerId(Self::next_task().0 | ANONYMOUS_BIT)
    }
    pub(crate) fn is_anonymous(self) -> bool {
        self.0 & (THREAD_BIT | ANONYMOUS_BIT) == ANONYMOUS_BIT
    }
    pub(super) fn next_task() -> Self {
        OwnerId(NEXT_TASK.fetch_add(1, Ordering::Relaxed))
    }
    /// The identity of a runtime task that is not tracked, from the runtime's task id.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn runtime_task(number: u64) -> Self {
        OwnerId((number & !(THREAD_BIT | RUNTIME_BIT | ANONYMOUS_BIT)) | RUNTIME_BIT)
    }
    pub(crate) fn is_runtime_task(self) -> bool {
        self.0 & (THREAD_BIT | RUNTIME_BIT) == RUNTIME_BIT
    }
    pub(super) fn next_thread() -> Self {
        OwnerId(NEXT_THREAD.fetch_add(1, Ordering::Relaxed) | THREAD_BIT)
    }
    /// Whether this owner is a task: a tracked one (`task#N`), or with the `tokio` feature
    /// an untracked tokio task (`tokio-task#N`).
    ///
    /// ```
    /// let task = ownsync::tracked(async {});
    /// assert!(task.owner().is_task());
    /// ```
    pub fn is_task(self) -> bool {
        self.0 & THREAD_BIT == 0
    }
    /// Whether this owner is a thread.
    ///
    /// ```
    /// assert!(ownsync::current_owner().is_thread());
    /// ```
    pub fn is_thread(self) -> bool {
        !self.is_task()
    }
    /// The number in the id's display (`17` for `task#17`).
    ///
    /// ```
    /// let id = ownsync::tracked(async {}).owner();
    /// assert_eq!(id.to_string(), format!("task#{}", id.number()));
    /// ```
    pub fn number(self) -> u64 {
        self.0 & !(THREAD_BIT | RUNTIME_BIT | ANONYMOUS_BIT)
    }
    /// The raw id, unique in the process. Never zero.
    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }
    pub(crate) fn from_u64(raw: u64) -> Option<Self> {
        (raw != 0).then_some(OwnerId(raw))
    }
    fn thread_name(self) -> Option<Arc<str>> {
        if self.is_task() {
            return None;
        }
        let names = THREAD_NAMES.lock().unwrap_or_else(|p| p.into_inner());
        names.get(&self.0).cloned()
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_runtime_task() {
            write!(f, "tokio-task#{}", self.number())
        } else if self.is_anonymous() {
            write!(f, "borrow#{}", self.number())
        } else if self.is_task() {
            write!(f, "task#{}", self.number())
        } else {
            write!(f, "thread#{}", self.number())?;
            if let Some(name) = self.thread_name() {
                write!(f, " ({name})")?;
            }
            Ok(())
        }
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
