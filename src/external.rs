//! Holds kept outside this crate, registered to the owner that took them.
//!
//! A primitive built on something else (a lock held in a database, a lease in a
//! coordination service) can still answer to the owner model of this crate: it
//! registers each hold to the owner acquiring it ([`register_external_hold`]), gives the
//! registration back when the hold is released (dropping the [`ExternalHold`]), and is
//! told through its [`OwnerHook`] when the owner went away still holding it: a tracked
//! task that completed, was cancelled or panicked with the hold leaked. That is the
//! same evidence that breaks an in-process [`Mutex`](crate::Mutex) or, under
//! [`AbandonPolicy::Reclaim`](crate::AbandonPolicy), returns a
//! [`Semaphore`](crate::Semaphore)'s permits; what the primitive does with it is its own.
//!
//! A hold is registered as *borrowed*, like the hold of a `lock()` or `acquire()`: the
//! owner's exit while it is registered is evidence that it was abandoned. Only holds
//! taken inside a tracked task (see [`tracked`](fn@crate::tracked)) are registered; others
//! are anonymous, and nothing ever reports them.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::error::AbandonReason;
use crate::id::OwnerId;
use crate::owner::{Abandon, Abandoner, Caller, Claim, HoldTicket, OrphanTag, Site, register_hold};

/// What an owner's abandonment of an [`ExternalHold`] is reported to.
///
/// [`abandoned`](Self::abandoned) runs in the exiting owner's context (the end of its
/// last poll, or its drop), once per abandoned hold, after the owner's records are
/// settled and with no lock of this crate held: it may take its own locks and send on
/// channels, and should not block. A panic in it is carried on after every other hold
/// of that owner has been settled.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ownsync::{ExternalAbandonment, OwnerHook};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
/// impl OwnerHook for Log {
///     fn abandoned(&self, abandonment: &ExternalAbandonment) {
///         self.0.lock().unwrap().push(abandonment.to_string());
///     }
/// }
/// let _hook: Arc<dyn OwnerHook> = Arc::new(Log::default());
/// ```
pub trait OwnerHook: Send + Sync + 'static {
    /// The owner of a hold registered with this hook went away still holding it.
    fn abandoned(&self, abandonment: &ExternalAbandonment);
}

/// Who abandoned an [`ExternalHold`], how, and where it had been taken.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ownsync::{AbandonReason, ExternalAbandonment, OwnerHook, register_external_hold, tracked};
///
/// #[derive(Default)]
/// struct Seen(Mutex<Option<ExternalAbandonment>>);
/// impl OwnerHook for Seen {
///     fn abandoned(&self, abandonment: &ExternalAbandonment) {
///         *self.0.lock().unwrap() = Some(abandonment.clone());
///     }
/// }
/// let seen = Arc::new(Seen::default());
/// let task = tracked({
///     let seen = seen.clone();
///     async move { std::mem::forget(register_external_hold(seen, None)) }
/// });
/// let id = task.owner();
/// futures::executor::block_on(task);
/// let abandonment = seen.0.lock().unwrap().clone().unwrap();
/// assert_eq!(abandonment.owner(), id);
/// assert_eq!(abandonment.reason(), AbandonReason::Exited);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalAbandonment {
    owner: OwnerId,
    owner_name: Option<Arc<str>>,
    reason: AbandonReason,
    site: Site,
}

impl ExternalAbandonment {
    /// The owner that went away holding it.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }
    /// The owner's name, if it had one (a named thread).
    pub fn owner_name(&self) -> Option<&str> {
        self.owner_name.as_deref()
    }
    /// How the owner went away.
    pub fn reason(&self) -> AbandonReason {
        self.reason
    }
    /// Where the hold was taken, as given to [`register_external_hold`].
    pub fn site(&self) -> Option<&'static Location<'static>> {
        self.site
    }
}

impl fmt::Display for ExternalAbandonment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.owner)?;
        if let Some(name) = &self.owner_name {
            write!(f, " ({name})")?;
        }
        write!(f, " {} while holding it", self.reason)?;
        if let Some(site) = self.site {
            write!(f, " (taken at {site})")?;
        }
        Ok(())
    }
}

/// The registration of a hold kept outside this crate (see [`register_external_hold`]).
///
/// Dropping it, or [`release`](Self::release), gives the registration back: the hold
/// was released in time, and the hook will not hear of it.
#[must_use = "dropping the registration at once says the hold was released"]
pub struct ExternalHold {
    owner: Option<OwnerId>,
    ticket: Option<HoldTicket>,
}

/// Registers a hold just taken outside this crate to the tracked task being polled now,
/// if there is one, so that the task's exit with the hold still registered (leaked,
/// forgotten, or the task cancelled or panicking while it held it) is reported to
/// `hook`, exactly once. Outside any tracked task the hold is anonymous: the returned
/// registration has no [`owner`](ExternalHold::owner) and nothing is ever reported.
///
/// `site` is where the hold was taken, for the report (a `#[track_caller]` entry point
/// passes `Some(Location::caller())`).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use ownsync::{ExternalAbandonment, OwnerHook, register_external_hold, tracked};
///
/// #[derive(Default)]
/// struct Count(AtomicUsize);
/// impl OwnerHook for Count {
///     fn abandoned(&self, _: &ExternalAbandonment) {
///         self.0.fetch_add(1, Ordering::SeqCst);
///     }
/// }
/// let count = Arc::new(Count::default());
/// futures::executor::block_on(tracked({
///     let count = count.clone();
///     async move {
///         let hold = register_external_hold(count.clone(), None);
///         assert!(hold.owner().is_some());
///         assert!(hold.release()); // released in time: nothing reported
///         std::mem::forget(register_external_hold(count, None)); // leaked
///     }
/// }));
/// assert_eq!(count.0.load(Ordering::SeqCst), 1);
/// ```
pub fn register_external_hold(
    hook: Arc<dyn OwnerHook>,
    site: Option<&'static Location<'static>>,
) -> ExternalHold {
    let entry = Arc::new(HookEntry(hook));
    match register_hold(Caller::Async, 1, &entry, false, site) {
        Some((owner, ticket)) => ExternalHold { owner: Some(owner), ticket },
        None => ExternalHold { owner: None, ticket: None },
    }
}

impl ExternalHold {
    /// The owner the hold is registered to; `None` for an anonymous hold.
    pub fn owner(&self) -> Option<OwnerId> {
        self.owner.filter(|_| self.ticket.is_some())
    }

    /// Gives the registration back. `true` if the hold was still registered (or
    /// anonymous): the caller released it in time. `false` if the owner's exit had
    /// already reported it to the hook as abandoned.
    pub fn release(mut self) -> bool {
        self.give_back()
    }

    fn give_back(&mut self) -> bool {
        match self.ticket.take() {
            Some(ticket) => ticket.unregister() != Claim::Abandoned,
            None => true,
        }
    }
}

impl Drop for ExternalHold {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl fmt::Debug for ExternalHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalHold").field("owner", &self.owner()).finish()
    }
}

/// The hook, as the owner records see a primitive.
struct HookEntry(Arc<dyn OwnerHook>);

impl Abandon for HookEntry {
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, _permits: usize, site: Site) {
        self.0.abandoned(&ExternalAbandonment {
            owner: owner.id,
            owner_name: owner.name.clone(),
            reason,
            site,
        });
    }
    // Registered as borrowed (never moving): an exit never orphans it.
    fn orphan(&self, _owner: &Abandoner, _permits: usize, _site: Site, _tag: OrphanTag) {}
    fn adopt_orphan(&self, _tag: OrphanTag) {}
}
