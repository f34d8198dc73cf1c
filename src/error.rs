//! Error types. A broken primitive must say *who* broke it and *how*, because the waiter
//! that sees the error is never the task that caused it.

use std::fmt;
use std::sync::Arc;

use crate::id::OwnerId;

/// How an owner went away while it still held something.
///
/// ```
/// use ownsync::AbandonReason;
/// assert_eq!(AbandonReason::Cancelled.to_string(), "was cancelled");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbandonReason {
    /// The owner finished (a tracked task completed, or its thread ended) still holding.
    Exited,
    /// A tracked task was dropped before it finished (`select!`, a timeout, an abort,
    /// runtime shutdown) still holding.
    Cancelled,
    /// The owner unwound from a panic while holding: the protected data may be half-updated.
    Panicked,
    /// A holder in another process lost the lease its hold depended on: the process died,
    /// paused or was cut off for longer than the lease's time to live, or the
    /// coordination service itself was unreachable that long (see the `ownsync-etcd`
    /// crate).
    LeaseExpired,
}

impl fmt::Display for AbandonReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AbandonReason::Exited => "exited",
            AbandonReason::Cancelled => "was cancelled",
            AbandonReason::Panicked => "panicked",
            AbandonReason::LeaseExpired => "lost its lease (holder or engine unreachable)",
        })
    }
}

/// Which kind of primitive an error or a statistics snapshot is about.
///
/// ```
/// use ownsync::PrimitiveKind;
/// assert_eq!(PrimitiveKind::Semaphore.to_string(), "semaphore");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrimitiveKind {
    /// [`Mutex`](crate::mutex::Mutex) or [`Lock`](crate::mutex::Lock).
    Mutex,
    /// [`Semaphore`](crate::semaphore::Semaphore).
    Semaphore,
    /// [`CapacityLimiter`](crate::limiter::CapacityLimiter).
    CapacityLimiter,
    /// [`RwLock`](crate::rwlock::RwLock).
    RwLock,
    /// [`Event`](crate::event::Event) (never broken: it has no holder).
    Event,
}

impl fmt::Display for PrimitiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrimitiveKind::Mutex => "mutex",
            PrimitiveKind::Semaphore => "semaphore",
            PrimitiveKind::CapacityLimiter => "capacity limiter",
            PrimitiveKind::RwLock => "rwlock",
            PrimitiveKind::Event => "event",
        })
    }
}

/// The primitive is broken: a holder went away without giving its hold back.
///
/// Every waiter, now and later, gets this error. It names the primitive, the owner
/// that abandoned it, and how.
///
/// ```
/// use ownsync::{AbandonReason, AcquireError, Mutex};
///
/// let mutex = Mutex::with_name(0, "config");
/// let handle = std::thread::spawn({
///     let mutex = std::sync::Arc::new(mutex);
///     let inner = mutex.clone();
///     move || {
///         // a thread that leaks its guard and ends still holding the lock
///         std::mem::forget(inner.blocking_lock().unwrap());
///         mutex
///     }
/// });
/// let mutex = handle.join().unwrap();
/// let AcquireError::Broken(err) = mutex.blocking_lock().unwrap_err() else { unreachable!() };
/// assert_eq!(err.reason(), AbandonReason::Exited);
/// assert!(err.to_string().starts_with("mutex \"config\" is broken: thread#"));
/// ```
///
/// One pointer wide (the details are shared by every waiter it is handed to), so every
/// `Result` an acquire returns stays small.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokenResourceError(Arc<Broken>);

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Broken {
    pub(crate) kind: PrimitiveKind,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) owner: OwnerId,
    pub(crate) owner_name: Option<Arc<str>>,
    pub(crate) reason: AbandonReason,
    /// Where the abandoned hold was taken, if known.
    pub(crate) site: Option<&'static std::panic::Location<'static>>,
}

impl BrokenResourceError {
    pub(crate) fn new(broken: Broken) -> Self {
        BrokenResourceError(Arc::new(broken))
    }
    /// The owner that abandoned its hold.
    pub fn owner(&self) -> OwnerId {
        self.0.owner
    }
    /// How the owner abandoned its hold.
    pub fn reason(&self) -> AbandonReason {
        self.0.reason
    }
    /// Which kind of primitive is broken.
    pub fn kind(&self) -> PrimitiveKind {
        self.0.kind
    }
    /// The primitive's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// Where the abandoned hold was taken: the acquire call in the user's code
    /// (`file:line:column`), when the hold was registered to an owner that knew it.
    ///
    /// ```
    /// use ownsync::{Mutex, tracked};
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(0);
    /// tracked(async { std::mem::forget(mutex.lock().await.unwrap()) }).await;
    /// let err = mutex.try_lock().unwrap_err();
    /// let ownsync::TryLockError::Broken(err) = err else { unreachable!() };
    /// assert_eq!(err.site().unwrap().file(), file!());
    /// assert!(err.to_string().contains(&format!("(taken at {}:", file!())));
    /// # });
    /// ```
    pub fn site(&self) -> Option<&'static std::panic::Location<'static>> {
        self.0.site
    }
}

impl fmt::Debug for BrokenResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Broken { kind, name, owner, owner_name, reason, site } = &*self.0;
        f.debug_struct("BrokenResourceError")
            .field("kind", kind)
            .field("name", name)
            .field("owner", owner)
            .field("owner_name", owner_name)
            .field("reason", reason)
            .field("site", site)
            .finish()
    }
}

impl fmt::Display for BrokenResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Broken { kind, name, owner, owner_name, reason, site } = &*self.0;
        write!(f, "{kind}")?;
        if let Some(name) = name {
            write!(f, " {name:?}")?;
        }
        write!(f, " is broken: {owner}")?;
        if let Some(owner_name) = owner_name {
            write!(f, " ({owner_name})")?;
        }
        write!(f, " {reason} while holding it")?;
        if let Some(site) = site {
            write!(f, " (taken at {site})")?;
        }
        Ok(())
    }
}

impl std::error::Error for BrokenResourceError {}

/// Why an `acquire`/`lock` (async or blocking) failed.
///
/// ```
/// use ownsync::{AcquireError, Semaphore};
/// let sem = Semaphore::new(1);
/// sem.close();
/// assert_eq!(sem.blocking_acquire().unwrap_err(), AcquireError::Closed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The semaphore was closed with `close()`.
    #[error("semaphore closed")]
    Closed,
    /// The primitive is broken: its holder abandoned it.
    #[error(transparent)]
    Broken(#[from] BrokenResourceError),
    /// The caller already holds (or, for a limiter, already waits for) what it asks for:
    /// waiting would never end.
    #[error("would deadlock: the caller already holds or awaits this resource")]
    WouldDeadlock,
    /// `acquire_on_behalf_of(borrower)` named an owner that has exited (or an id never
    /// given out by `Tracked::owner` or `current_owner`): nothing was taken.
    #[error(
        "{0} is not a live owner (it exited, or its id was not taken from Tracked::owner or current_owner)"
    )]
    OwnerGone(OwnerId),
}

/// Why `try_lock` failed.
///
/// ```
/// use ownsync::{Mutex, TryLockError};
/// let mutex = Mutex::new(1);
/// let _guard = mutex.try_lock().unwrap();
/// assert_eq!(mutex.try_lock().unwrap_err(), TryLockError::WouldBlock);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryLockError {
    /// Somebody else holds the lock (or waiters are queued ahead).
    #[error("operation would block")]
    WouldBlock,
    /// The mutex is broken: its holder abandoned it.
    #[error(transparent)]
    Broken(#[from] BrokenResourceError),
    /// The caller already holds this mutex.
    #[error("would deadlock: the caller already holds this mutex")]
    WouldDeadlock,
}

/// Why `try_acquire` failed.
///
/// ```
/// use ownsync::{Semaphore, TryAcquireError};
/// let sem = Semaphore::new(0);
/// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough permits or tokens free right now (or waiters are queued ahead).
    #[error("no permits available")]
    NoPermits,
    /// The semaphore was closed with `close()`.
    #[error("semaphore closed")]
    Closed,
    /// The primitive is broken: its holder abandoned it.
    #[error(transparent)]
    Broken(#[from] BrokenResourceError),
    /// The caller (borrower) already holds or awaits a token of this limiter.
    #[error("would deadlock: the borrower already holds or awaits a token")]
    WouldDeadlock,
    /// `try_acquire_on_behalf_of(borrower)` named an owner that has exited (or an id
    /// never given out by `Tracked::owner` or `current_owner`): nothing was taken.
    #[error(
        "{0} is not a live owner (it exited, or its id was not taken from Tracked::owner or current_owner)"
    )]
    OwnerGone(OwnerId),
}

/// Why a manual `release` failed. The hold is left untouched.
///
/// ```
/// use ownsync::{Lock, ReleaseError};
/// let lock = Lock::default();
/// assert_eq!(lock.release(), Err(ReleaseError::NotHeld));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Somebody else holds it: only the holder may release.
    #[error("cannot release: held by {}, not by the caller {caller}", holder.map_or("an anonymous holder".to_string(), |h| h.to_string()))]
    NotOwner {
        /// Who holds it (`None`: held anonymously, through a guard).
        holder: Option<OwnerId>,
        /// Who tried to release it.
        caller: OwnerId,
    },
    /// Nothing is held that a manual release could give back.
    #[error("cannot release: not held")]
    NotHeld,
}

impl From<TryAcquireError> for TryLockError {
    fn from(err: TryAcquireError) -> Self {
        match err {
            TryAcquireError::Broken(broken) => TryLockError::Broken(broken),
            TryAcquireError::WouldDeadlock => TryLockError::WouldDeadlock,
            // A mutex is never closed; both mean "not now".
            TryAcquireError::NoPermits | TryAcquireError::Closed => TryLockError::WouldBlock,
            // Only a limiter's on-behalf-of borrow says this, never a mutex.
            TryAcquireError::OwnerGone(_) => TryLockError::WouldBlock,
        }
    }
}

/// Why a hold could not be handed over.
///
/// ```
/// use ownsync::{HandOverError, Semaphore, tracked};
/// let sem = std::sync::Arc::new(Semaphore::new(1));
/// let finished = tracked(async {});
/// let gone = finished.owner();
/// futures::executor::block_on(finished);
/// let mut permit = sem.try_acquire_owned().unwrap();
/// assert_eq!(permit.hand_to(gone), Err(HandOverError::OwnerGone(gone)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandOverError {
    /// No live owner has this id: it has exited, it names no owner (an anonymous
    /// borrower, a runtime task id), or it was never given out by [`Tracked::owner`]
    /// or [`current_owner`](crate::owner::current_owner). The hold stays where it was.
    ///
    /// [`Tracked::owner`]: crate::Tracked::owner
    #[error(
        "cannot hand over to {0}: it is not a live owner (it exited, or its id was not taken from Tracked::owner or current_owner)"
    )]
    OwnerGone(OwnerId),
    /// The owner the hold was registered to exited first, and its exit already
    /// abandoned the hold (the primitive broke, or took the permits back). Nothing is
    /// registered, and dropping the hold releases nothing.
    #[error("cannot hand over: the hold was already abandoned by its previous owner's exit")]
    Abandoned,
}

/// Why a broken mutex or RwLock cannot be repaired now (see `Mutex::try_repair`).
///
/// ```
/// use ownsync::{Mutex, RepairError};
/// let mutex = Mutex::new(0);
/// assert_eq!(mutex.try_repair().err(), Some(RepairError::NotBroken));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// It is not broken: there is nothing to repair.
    #[error("not broken: nothing to repair")]
    NotBroken,
    /// Guards of it are still out (a `Mutex` or `RwLock` only: a `Semaphore` or
    /// `CapacityLimiter` guards no data and is repaired with permits still out): the abandoned hold's own guard (moved elsewhere, or
    /// leaked with `mem::forget`), another holder's, or another repairer's. A repair
    /// needs every one of them dropped, so that nothing else reaches the data.
    #[error("{guards_out} permit(s) still held by guards that were not dropped (a leaked guard never is)")]
    InUse {
        /// How many permits those guards hold.
        guards_out: usize,
    },
}
