//! Who holds what, and what happens when they go away.
//!
//! An owner is a tracked task or a thread. Each owner has one record: its id, whether
//! (and how) it exited, and the holds registered to it. A hold is registered only when
//! its owner is known; anonymous holds (an async acquire outside any tracked task) pay
//! nothing for tracking. When the owner exits, it claims every hold still registered
//! and hands each to its primitive's [`Abandon`] hook, which breaks the primitive (or
//! reclaims the hold, per policy) and wakes every waiter. Releasing a hold claims its
//! registration first, so a release racing the owner's exit is decided exactly once, by
//! the owner record's lock: either the release wins and the hold returns normally, or
//! the exit wins and the release becomes a no-op.
//!
//! Lock order: a primitive's lot lock may be held while an owner record's lock is taken,
//! never the other way round (`exit` drops the record's lock before calling `abandon`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use slab::Slab;

use crate::error::AbandonReason;
use crate::loom::{Mutex, owned_thread_local};

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
pub struct OwnerId(u64);

const THREAD_BIT: u64 = 1 << 63;
/// A runtime's own task id (the `tokio` feature): an identity, never an owner that exits.
const RUNTIME_BIT: u64 = 1 << 62;
static NEXT_TASK: AtomicU64 = AtomicU64::new(1);
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
/// Names of live named threads, for `Display` of their ids.
static THREAD_NAMES: std::sync::Mutex<BTreeMap<u64, Arc<str>>> = std::sync::Mutex::new(BTreeMap::new());

impl OwnerId {
    /// A fresh id owned by nobody: the borrower of an anonymous (untracked async) borrow.
    pub(crate) fn next_anonymous() -> Self {
        Self::next_task()
    }
    fn next_task() -> Self {
        OwnerId(NEXT_TASK.fetch_add(1, Ordering::Relaxed))
    }
    /// The identity of a runtime task that is not tracked, from the runtime's task id.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn runtime_task(number: u64) -> Self {
        OwnerId((number & !(THREAD_BIT | RUNTIME_BIT)) | RUNTIME_BIT)
    }
    fn is_runtime_task(self) -> bool {
        self.0 & (THREAD_BIT | RUNTIME_BIT) == RUNTIME_BIT
    }
    fn next_thread() -> Self {
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
        self.0 & !(THREAD_BIT | RUNTIME_BIT)
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

/// What a primitive does when an owner abandons a hold on it.
pub(crate) trait Abandon: Send + Sync {
    /// `owner` went away (`reason`) while holding `permits` of this primitive.
    fn abandon(&self, owner: &OwnerInner, reason: AbandonReason, permits: usize);
}

struct HoldEntry {
    primitive: Arc<dyn Abandon>,
    permits: usize,
}

#[derive(Default)]
struct OwnerState {
    exited: Option<AbandonReason>,
    holds: Slab<HoldEntry>,
}

/// One owner's record, shared by its tracked wrapper (or thread-local) and its holds.
pub(crate) struct OwnerInner {
    id: OwnerId,
    name: Option<Arc<str>>,
    state: Mutex<OwnerState>,
}

impl OwnerInner {
    fn new(id: OwnerId, name: Option<Arc<str>>) -> Self {
        OwnerInner { id, name, state: Mutex::new(OwnerState::default()) }
    }

    pub(crate) fn new_task() -> Arc<Self> {
        Arc::new(Self::new(OwnerId::next_task(), None))
    }

    pub(crate) fn id(&self) -> OwnerId {
        self.id
    }

    /// The thread's name, kept with the record so errors can name a thread after it ended.
    pub(crate) fn name(&self) -> Option<Arc<str>> {
        self.name.clone()
    }

    /// Registers a hold of `permits` on `primitive`. Fails with the owner's exit reason if
    /// it already exited (the caller must then treat the hold as abandoned).
    pub(crate) fn register(
        self: &Arc<Self>,
        primitive: Arc<dyn Abandon>,
        permits: usize,
    ) -> Result<HoldTicket, AbandonReason> {
        let mut state = self.state.lock();
        if let Some(reason) = state.exited {
            return Err(reason);
        }
        let key = state.holds.insert(HoldEntry { primitive, permits });
        Ok(HoldTicket { owner: self.clone(), key })
    }

    /// Marks the owner exited and abandons every hold still registered to it.
    /// Idempotent: only the first exit counts.
    pub(crate) fn exit(&self, reason: AbandonReason) {
        let holds = {
            let mut state = self.state.lock();
            if state.exited.is_some() {
                return;
            }
            state.exited = Some(reason);
            std::mem::take(&mut state.holds)
        };
        for (_, hold) in holds {
            hold.primitive.abandon(self, reason, hold.permits);
        }
    }

    #[cfg(test)]
    pub(crate) fn registered_holds(&self) -> usize {
        self.state.lock().holds.len()
    }
}

/// Proof that a hold is registered to an owner. Not `Drop`: the holder decides what giving
/// it back means, through [`HoldTicket::unregister`].
pub(crate) struct HoldTicket {
    owner: Arc<OwnerInner>,
    key: usize,
}

impl HoldTicket {
    pub(crate) fn owner(&self) -> &OwnerInner {
        &self.owner
    }

    /// Claims the hold back from the owner record. `true`: the hold is still ours and the
    /// caller must release it. `false`: the owner's exit claimed it first and has already
    /// abandoned it, so the caller must not release it again.
    pub(crate) fn unregister(&self) -> bool {
        let mut state = self.owner.state.lock();
        state.holds.try_remove(self.key).is_some()
    }

    /// Changes how many permits the registered hold has (`split` / `merge`). `false` if the
    /// owner's exit already claimed it.
    pub(crate) fn set_permits(&self, permits: usize) -> bool {
        let mut state = self.owner.state.lock();
        match state.holds.get_mut(self.key) {
            Some(entry) => {
                entry.permits = permits;
                true
            }
            None => false,
        }
    }

    /// Registers another hold, on the same primitive, to the same owner.
    pub(crate) fn register_sibling(&self, permits: usize) -> Option<HoldTicket> {
        let primitive = {
            let state = self.owner.state.lock();
            state.holds.get(self.key)?.primitive.clone()
        };
        self.owner.register(primitive, permits).ok()
    }
}

impl fmt::Debug for HoldTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HoldTicket({})", self.owner.id)
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// The tracked task being polled on this thread, if any. Set by `Tracked::poll` for
    /// the length of one poll, from an `Arc` that the `Tracked` keeps alive that long.
    static CURRENT_TASK: Cell<*const OwnerInner> = const { Cell::new(std::ptr::null()) };
}
#[cfg(loom)]
loom::thread_local! {
    static CURRENT_TASK: Cell<*const OwnerInner> = Cell::new(std::ptr::null());
}

owned_thread_local! {
    /// This thread's own owner record, made on first use; its exit runs when the thread's
    /// thread-locals are destroyed.
    static THREAD_OWNER: ThreadOwner = ThreadOwner::new();
}

struct ThreadOwner(Arc<OwnerInner>);

impl ThreadOwner {
    fn new() -> Self {
        let id = OwnerId::next_thread();
        let name: Option<Arc<str>> = std::thread::current().name().map(Arc::from);
        if let Some(name) = &name {
            THREAD_NAMES.lock().unwrap_or_else(|p| p.into_inner()).insert(id.0, name.clone());
        }
        ThreadOwner(Arc::new(OwnerInner::new(id, name)))
    }
}

impl Drop for ThreadOwner {
    fn drop(&mut self) {
        self.0.exit(AbandonReason::Exited);
        THREAD_NAMES.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0.id.0);
    }
}

/// Sets the current task for one poll; restores the previous one when dropped.
pub(crate) struct CurrentTaskScope {
    previous: *const OwnerInner,
}

impl CurrentTaskScope {
    pub(crate) fn enter(owner: &Arc<OwnerInner>) -> Self {
        let previous = CURRENT_TASK.with(|current| current.replace(Arc::as_ptr(owner)));
        CurrentTaskScope { previous }
    }
}

impl Drop for CurrentTaskScope {
    fn drop(&mut self) {
        let previous = self.previous;
        CURRENT_TASK.with(|current| current.set(previous));
    }
}

/// Where an acquire comes from, which decides its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// An async or `try_*` entry point: owned by the current tracked task, else anonymous.
    Async,
    /// A blocking entry point: owned by the current tracked task, else by the thread.
    Blocking,
}

fn current_task_ptr() -> *const OwnerInner {
    CURRENT_TASK.try_with(Cell::get).unwrap_or(std::ptr::null())
}

/// The record of the owner an acquire from `caller` belongs to, if it has one.
pub(crate) fn owner_for(caller: Caller) -> Option<Arc<OwnerInner>> {
    let task = current_task_ptr();
    if !task.is_null() {
        // SAFETY: a non-null CURRENT_TASK was set by `CurrentTaskScope::enter` from a live
        // `Arc<OwnerInner>` owned by the `Tracked` being polled on this thread, and it is
        // restored before that poll returns or unwinds; so the allocation is alive here and
        // we may add a strong count for the clone we return.
        unsafe {
            Arc::increment_strong_count(task);
            return Some(Arc::from_raw(task));
        }
    }
    match caller {
        Caller::Async => None,
        Caller::Blocking => THREAD_OWNER.try_with(|thread| thread.0.clone()).ok(),
    }
}

/// The id of the owner an acquire from `caller` belongs to, without touching refcounts.
pub(crate) fn owner_id_for(caller: Caller) -> Option<OwnerId> {
    let task = current_task_ptr();
    if !task.is_null() {
        // SAFETY: as in `owner_for`: the pointer is to a live record for this poll.
        return Some(unsafe { (*task).id });
    }
    match caller {
        Caller::Async => None,
        Caller::Blocking => THREAD_OWNER.try_with(|thread| thread.0.id).ok(),
    }
}

/// Who is acquiring, for would-deadlock checks: the owner, or else (with the `tokio`
/// feature) the untracked runtime task.
pub(crate) fn identity_for(caller: Caller) -> Option<OwnerId> {
    owner_id_for(caller).or_else(crate::runtime::task_identity)
}

/// The owner of the code running now: the innermost tracked task being polled on this
/// thread, or else this thread.
///
/// ```
/// use ownsync::{current_owner, tracked};
///
/// let task = tracked(async { current_owner() });
/// let id = task.owner();
/// assert_eq!(futures::executor::block_on(task), id);
/// assert!(current_owner().is_thread());
/// ```
pub fn current_owner() -> OwnerId {
    owner_id_for(Caller::Blocking).unwrap_or_else(|| {
        // This thread's thread-locals are being torn down: give it a fresh, never-reused id
        // rather than panic.
        OwnerId::next_thread()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_display_by_kind() {
        let a = OwnerId::next_task();
        let b = OwnerId::next_task();
        assert_ne!(a, b);
        assert_eq!(a.to_string(), format!("task#{}", a.number()));
        let t = OwnerId::next_thread();
        assert!(t.is_thread() && !t.is_task());
        assert!(t.to_string().starts_with("thread#"));
        assert_eq!(OwnerId::from_u64(a.as_u64()), Some(a));
        assert_eq!(OwnerId::from_u64(0), None);
    }

    #[test]
    fn named_thread_ids_show_the_name_while_alive() {
        let id = std::thread::Builder::new()
            .name("worker-7".into())
            .spawn(|| {
                let id = current_owner();
                assert_eq!(id.to_string(), format!("thread#{} (worker-7)", id.number()));
                id
            })
            .unwrap()
            .join()
            .unwrap();
        // The thread ended: its name is no longer kept for the bare id.
        assert_eq!(id.to_string(), format!("thread#{}", id.number()));
    }

    struct CountAbandons(std::sync::Mutex<Vec<(OwnerId, AbandonReason, usize)>>);
    impl Abandon for CountAbandons {
        fn abandon(&self, owner: &OwnerInner, reason: AbandonReason, permits: usize) {
            self.0.lock().unwrap().push((owner.id(), reason, permits));
        }
    }

    #[test]
    fn exit_abandons_registered_holds_once_and_release_wins_before_it() {
        let owner = OwnerInner::new_task();
        let sink = Arc::new(CountAbandons(std::sync::Mutex::new(Vec::new())));
        let released = owner.register(sink.clone(), 1).unwrap();
        let leaked = owner.register(sink.clone(), 3).unwrap();
        assert_eq!(owner.registered_holds(), 2);
        assert!(released.unregister());
        owner.exit(AbandonReason::Cancelled);
        owner.exit(AbandonReason::Exited); // ignored: already exited
        assert_eq!(*sink.0.lock().unwrap(), vec![(owner.id(), AbandonReason::Cancelled, 3)]);
        // The exit claimed the leaked hold: releasing it now must not release it twice.
        assert!(!leaked.unregister());
        // Registering to an exited owner fails with its reason.
        assert_eq!(owner.register(sink, 1).unwrap_err(), AbandonReason::Cancelled);
    }
}
