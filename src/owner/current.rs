//! Whose context the code running now is in: the tracked task being polled, else the
//! thread; how an acquire finds its owner ([`Caller`]), and registers to it.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::AbandonReason;
use crate::loom::owned_thread_local;

use super::abandon::{Abandon, Abandoner};
use super::record::{CURRENT_TASK, THREAD_RECORD};
use super::record::{OwnerInner, RecordRef, current_task_ptr};
#[cfg(feature = "diagnostics")]
use super::slabs::HoldEntry;
use super::ticket::HoldTicket;
use crate::id::{OwnerId, Site, THREAD_NAMES};

owned_thread_local! {
    /// This thread's own owner record, made on first use; its exit runs when the thread's
    /// thread-locals are destroyed.
    static THREAD_OWNER: ThreadOwner = ThreadOwner::new();
}

pub(super) struct ThreadOwner(Arc<OwnerInner>);

impl ThreadOwner {
    pub(super) fn new() -> Self {
        let id = OwnerId::next_thread();
        let name: Option<Arc<str>> = std::thread::current().name().map(Arc::from);
        if let Some(name) = &name {
            THREAD_NAMES.lock().unwrap_or_else(|p| p.into_inner()).insert(id.0, name.clone());
        }
        let record = Arc::new(OwnerInner::new(id, name));
        let _ = THREAD_RECORD.try_with(|current| current.set(Arc::as_ptr(&record)));
        ThreadOwner(record)
    }
}

impl Drop for ThreadOwner {
    fn drop(&mut self) {
        // From here on this thread is no longer the record's context: a hold of it that
        // is dropped by another thread-local's destructor takes the locked path.
        let _ = THREAD_RECORD.try_with(|current| current.set(std::ptr::null()));
        // The thread's last act is its exit, so this is still its context.
        self.0.exit(AbandonReason::Exited);
        // The id first: reading it takes the record's stripe, which must not be taken
        // under the names' lock (under loom, a loom lock under a `std` one can hang).
        let id = self.0.id();
        THREAD_NAMES.lock().unwrap_or_else(|p| p.into_inner()).remove(&id.0);
    }
}

/// Sets the current task for one poll; restores the previous one when dropped.
pub(crate) struct CurrentTaskScope {
    pub(super) previous: *const OwnerInner,
}

impl CurrentTaskScope {
    pub(crate) fn enter(owner: &Arc<OwnerInner>) -> Self {
        let previous = CURRENT_TASK.with(|current| current.replace(Arc::as_ptr(owner)));
        CurrentTaskScope { previous }
    }

    /// The task that was current before: the scope that polled this one, if any.
    pub(crate) fn enclosing(&self) -> *const OwnerInner {
        self.previous
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
    /// `Async` through an identity API (a manual `Lock::acquire`): its owner asking for
    /// what it already holds is a certain deadlock.
    ManualAsync,
    /// `Blocking` through an identity API.
    ManualBlocking,
}

impl Caller {
    pub(crate) fn is_manual(self) -> bool {
        matches!(self, Caller::ManualAsync | Caller::ManualBlocking)
    }
    /// A blocking entry point: a thread that may spin, since it has nothing else to do.
    pub(crate) fn blocks(self) -> bool {
        matches!(self, Caller::Blocking | Caller::ManualBlocking)
    }
}

/// Runs `f` on the record of the owner an acquire from `caller` belongs to, if it has
/// one. `f` runs in that owner's context.
pub(super) fn with_owner<R>(caller: Caller, f: impl FnOnce(RecordRef<'_>) -> R) -> Option<R> {
    let task = current_task_ptr();
    if !task.is_null() {
        // SAFETY: a non-null CURRENT_TASK was set by `CurrentTaskScope::enter` from
        // `Arc::as_ptr` of the `Tracked` being polled on this thread, which keeps the
        // record alive, and it is restored before that poll returns or unwinds.
        return Some(f(unsafe { RecordRef::from_raw(task) }));
    }
    match caller {
        Caller::Async | Caller::ManualAsync => None,
        Caller::Blocking | Caller::ManualBlocking => {
            THREAD_OWNER.try_with(|thread| f(RecordRef::of(&thread.0))).ok()
        }
    }
}

/// Registers `permits` just acquired from `caller` to its owner, if it has one. Returns
/// the owner, and the ticket unless the owner already exited (a `Tracked` polled again
/// after a poll panicked), in which case the hold stays anonymous. `moves`: an owned
/// hold, orphaned rather than abandoned if the owner exits with it.
#[inline(always)]
pub(crate) fn register_hold<P: Abandon + 'static>(
    caller: Caller,
    permits: usize,
    primitive: &Arc<P>,
    moves: bool,
    site: Site,
) -> Option<(OwnerId, Option<HoldTicket>)> {
    let identity = Arc::as_ptr(primitive).cast();
    let clone = || primitive.clone() as Arc<dyn Abandon>;
    let task = current_task_ptr();
    if task.is_null() {
        return match caller {
            Caller::Async | Caller::ManualAsync => None,
            Caller::Blocking | Caller::ManualBlocking => with_owner(caller, |owner| {
                let (id, ticket) = owner.register_here(identity, clone, permits, moves, site);
                (id, ticket.ok())
            }),
        };
    }
    // SAFETY: as in `with_owner`: a non-null CURRENT_TASK is the record of the `Tracked`
    // being polled on this thread, kept alive by it for the length of this poll.
    let owner = unsafe { RecordRef::from_raw(task) };
    let (id, ticket) = owner.register_here(identity, clone, permits, moves, site);
    Some((id, ticket.ok()))
}

/// The holds of the owner an acquire from `caller` belongs to, read in its context:
/// what a waiter's owner has when it queues, for the wait-for graph (feature
/// `diagnostics`). Holds forwarded from a completed nested scope are not included.
#[cfg(feature = "diagnostics")]
pub(crate) fn holds_of_current(caller: Caller) -> Vec<crate::info::Held> {
    use crate::info::Held;
    let held = |entry: &HoldEntry| Held {
        identity: Arc::as_ptr(&entry.primitive).cast::<()>() as usize,
        permits: entry.permits,
        site: entry.site,
    };
    with_owner(caller, |owner| {
        // SAFETY: `with_owner` runs this in the owner's context.
        let Ok(body) = (unsafe { owner.body() }) else { return Vec::new() };
        let shared = body.shared.lock();
        // SAFETY: in the owner's context; the closure only reads the slab (no hold is
        // dropped, no primitive called).
        let mut holds: Vec<Held> = unsafe {
            body.with_local(|local| {
                let released = |key: usize| local.spare == Some(key) || shared.released_local.contains(&key);
                local.holds.iter().filter(|(key, _)| !released(*key)).map(|(_, entry)| held(entry)).collect()
            })
        };
        holds.extend(shared.holds.iter().map(|(_, entry)| held(entry)));
        holds
    })
    .unwrap_or_default()
}

/// Who abandons a hold dropped now by a panicking caller with no registered owner.
pub(crate) fn current_abandoner(caller: Caller) -> Option<Abandoner> {
    with_owner(caller, |owner| owner.abandoner())
}

/// The id of the owner an acquire from `caller` belongs to, without touching refcounts.
pub(crate) fn owner_id_for(caller: Caller) -> Option<OwnerId> {
    // SAFETY: `with_owner` runs this in the owner's context.
    with_owner(caller, |owner| unsafe { owner.id_here() })
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
    let published = with_owner(Caller::Blocking, |owner| {
        // SAFETY: `with_owner` runs this in the owner's context.
        if unsafe { owner.body() }.is_ok_and(|body| !body.published.load(Relaxed)) {
            owner.to_arc().publish();
        }
        // SAFETY: as above.
        unsafe { owner.id_here() }
    });
    published.unwrap_or_else(|| {
        // This thread's thread-locals are being torn down: give it a fresh, never-reused id
        // rather than panic.
        OwnerId::next_thread()
    })
}

/// How many holds the owner whose context this is has registered.
#[cfg(test)]
pub(crate) fn live_holds_of_current() -> usize {
    with_owner(Caller::Blocking, |owner| owner.live_holds()).unwrap_or(0)
}
