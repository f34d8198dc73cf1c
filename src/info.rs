//! What a primitive tells about its holds and waits ([`HoldInfo`], [`WaitInfo`],
//! [`OrphanInfo`]), how they are shown, and the thresholds of the warnings: the records
//! `statistics()`, `Debug`, errors and the process-wide snapshot share. A leaf: it names
//! owners and sites, nothing else of the crate. The public face of all this is the
//! `diagnostics` module, which re-exports it with the snapshot.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::id::OwnerId;

/// The default threshold of [`set_self_wait_warning`]: one second.
pub const DEFAULT_SELF_WAIT_WARNING: Duration = Duration::from_secs(1);

/// A warning threshold that any thread may set: nanoseconds, or `OFF`.
struct Threshold(AtomicU64);

const OFF: u64 = u64::MAX;

impl Threshold {
    fn set(&self, threshold: Option<Duration>) {
        let nanos = threshold.map_or(OFF, |t| u64::try_from(t.as_nanos()).unwrap_or(OFF - 1).min(OFF - 1));
        self.0.store(nanos, Relaxed);
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Relaxed) {
            OFF => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

static SELF_WAIT_WARNING: Threshold = Threshold(AtomicU64::new(DEFAULT_SELF_WAIT_WARNING.as_nanos() as u64));

/// Sets how long a self-wait lasts before it is reported (see the module docs), for
/// the whole process; `None` turns the report off. The default is
/// [`DEFAULT_SELF_WAIT_WARNING`]. Without the `tracing` feature nothing is reported,
/// but self-waits are still counted in `statistics()` and shown in `Debug`.
///
/// ```
/// use std::time::Duration;
/// ownsync::diagnostics::set_self_wait_warning(Some(Duration::from_millis(250)));
/// assert_eq!(ownsync::diagnostics::self_wait_warning(), Some(Duration::from_millis(250)));
/// ownsync::diagnostics::set_self_wait_warning(None);
/// assert_eq!(ownsync::diagnostics::self_wait_warning(), None);
/// # ownsync::diagnostics::set_self_wait_warning(Some(ownsync::diagnostics::DEFAULT_SELF_WAIT_WARNING));
/// ```
pub fn set_self_wait_warning(threshold: Option<Duration>) {
    SELF_WAIT_WARNING.set(threshold);
}

/// The threshold set by [`set_self_wait_warning`].
///
/// ```
/// assert_eq!(ownsync::diagnostics::self_wait_warning(), Some(ownsync::diagnostics::DEFAULT_SELF_WAIT_WARNING));
/// ```
pub fn self_wait_warning() -> Option<Duration> {
    SELF_WAIT_WARNING.get()
}

static LONG_WAIT_WARNING: Threshold = Threshold(AtomicU64::new(OFF));

/// Sets how long a wait, or an exclusive hold that others wait for, lasts before it is
/// reported by a `WARN` event (target `ownsync`, feature `tracing`), once per wait or
/// hold, naming its owner and acquire site; `None` (the default) turns the report off.
///
/// Like the self-wait report it is checked lazily, with no timer thread: when the
/// primitive is next touched on its slow path (another waiter queues, a waiter is polled
/// again) or a snapshot is taken. A hold is measured as [`HoldInfo::held_for`] says;
/// counted holds (permits, read guards) are reported through their waiters.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ownsync::diagnostics::long_wait_warning(), None);
/// ownsync::diagnostics::set_long_wait_warning(Some(Duration::from_secs(5)));
/// assert_eq!(ownsync::diagnostics::long_wait_warning(), Some(Duration::from_secs(5)));
/// # ownsync::diagnostics::set_long_wait_warning(None);
/// ```
pub fn set_long_wait_warning(threshold: Option<Duration>) {
    LONG_WAIT_WARNING.set(threshold);
}

/// The threshold set by [`set_long_wait_warning`]; `None` (off) by default.
///
/// ```
/// assert_eq!(ownsync::diagnostics::long_wait_warning(), None);
/// ```
pub fn long_wait_warning() -> Option<Duration> {
    LONG_WAIT_WARNING.get()
}

/// Where a hold or a wait began: the caller's `#[track_caller]` location.
pub type Site = Option<&'static Location<'static>>;

/// One hold of a primitive, as its `statistics()` (and `snapshot()`, with the
/// `diagnostics` feature) show it.
///
/// Per primitive, the exclusive hold is listed (a mutex's, an RwLock's writer); counted
/// holds (permits, read guards) are counted there, and listed by owner in the process-wide
/// snapshot for owners that wait.
///
/// ```
/// let mutex = ownsync::Mutex::new(0);
/// let guard = mutex.blocking_lock()?; // held by this thread
/// let stats = mutex.statistics();
/// let hold = &stats.holds()[0];
/// assert_eq!(hold.owner(), Some(ownsync::current_owner()));
/// assert_eq!(hold.site().unwrap().line(), line!() - 4);
/// assert_eq!(hold.held_for(), None, "nobody waited for it yet");
/// # drop(guard);
/// # Ok::<(), ownsync::AcquireError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldInfo {
    pub(crate) owner: Option<OwnerId>,
    pub(crate) permits: usize,
    pub(crate) site: Site,
    pub(crate) held_for: Option<Duration>,
}

impl HoldInfo {
    /// Who holds it (`None` for a hold taken outside any owner's context).
    pub fn owner(&self) -> Option<OwnerId> {
        self.owner
    }
    /// How many permits it holds.
    pub fn permits(&self) -> usize {
        self.permits
    }
    /// Where it was taken.
    pub fn site(&self) -> Site {
        self.site
    }
    /// At least how long it has been held: measured from when it was first seen with
    /// a waiter behind it (it was handed over while others still waited, a waiter
    /// queued, or a snapshot found one queued), never from earlier. `None` while nobody
    /// waits for it: timing every hold would cost every lock a clock read, where a
    /// hand-off with waiters left pays one within the noise of a contended loop.
    pub fn held_for(&self) -> Option<Duration> {
        self.held_for
    }
}

/// One queued waiter of a primitive.
///
/// ```
/// use futures::FutureExt;
/// # futures::executor::block_on(ownsync::tracked(async {
/// let mutex = ownsync::Mutex::new(0);
/// let guard = mutex.lock().await?; // held by this tracked task
/// let mut again = Box::pin(mutex.lock()); // a sibling sub-future asks again
/// assert!(again.as_mut().now_or_never().is_none());
/// let stats = mutex.statistics();
/// let wait = &stats.waits()[0];
/// assert_eq!(wait.site().unwrap().line(), line!() - 4);
/// assert!(wait.is_self_wait(), "the task waits for a lock it holds itself");
/// drop(guard);
/// assert!(again.await.is_ok(), "a self-wait is not an error: the holder released");
/// # Ok::<(), ownsync::AcquireError>(()) })).unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WaitInfo {
    pub(crate) owner: Option<OwnerId>,
    pub(crate) permits: usize,
    pub(crate) site: Site,
    pub(crate) waited_for: Duration,
    pub(crate) self_wait: bool,
    /// What its owner held when it queued (see [`Held`]).
    #[cfg(feature = "diagnostics")]
    pub(crate) holding: Vec<Held>,
}

/// A hold its owner had when it queued for another: the primitive's identity (the
/// address its holds are registered under), permits and site.
#[cfg(feature = "diagnostics")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) identity: usize,
    pub(crate) permits: usize,
    pub(crate) site: Site,
}

impl WaitInfo {
    /// Who waits (`None` for a waiter outside any owner's context).
    pub fn owner(&self) -> Option<OwnerId> {
        self.owner
    }
    /// How many permits it waits for.
    pub fn permits(&self) -> usize {
        self.permits
    }
    /// Where it began to wait.
    pub fn site(&self) -> Site {
        self.site
    }
    /// How long it has waited so far (to within a few milliseconds: a coarse clock).
    pub fn waited_for(&self) -> Duration {
        self.waited_for
    }
    /// Whether it waits for an exclusive hold its own owner has: fine if a sibling
    /// sub-future of that owner will release it, a futurelock if none will.
    pub fn is_self_wait(&self) -> bool {
        self.self_wait
    }
}

/// An owned hold (owned guard, permit, `'static` token) whose acquirer exited while it
/// was still out, not released or adopted since: it may be in use elsewhere, or leaked.
///
/// ```
/// let sem = ownsync::Semaphore::new(1);
/// assert!(sem.statistics().orphans().is_empty());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OrphanInfo {
    pub(crate) acquirer: OwnerId,
    pub(crate) permits: usize,
    pub(crate) site: Site,
    /// Which hold it is, for its adoption (see `HoldTicket::orphan_tag`).
    pub(crate) tag: (usize, usize),
}

impl OrphanInfo {
    /// The owner that acquired it and exited.
    pub fn acquirer(&self) -> OwnerId {
        self.acquirer
    }
    /// How many permits it holds.
    pub fn permits(&self) -> usize {
        self.permits
    }
    /// Where it was taken.
    pub fn site(&self) -> Site {
        self.site
    }
}

// `Debug` by hand: what a waiter's owner held and an orphan's tag are the crate's
// bookkeeping, not part of what a person reads.
impl fmt::Debug for WaitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitInfo")
            .field("owner", &self.owner)
            .field("permits", &self.permits)
            .field("site", &self.site)
            .field("waited_for", &self.waited_for)
            .field("self_wait", &self.self_wait)
            .finish()
    }
}

impl fmt::Debug for OrphanInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrphanInfo")
            .field("acquirer", &self.acquirer)
            .field("permits", &self.permits)
            .field("site", &self.site)
            .finish()
    }
}

/// How the permits of a counted primitive (a semaphore's permits, a limiter's tokens)
/// stand: free, total, held, and how many of the held ones no listed hold accounts for.
/// Displays as `k of n available`.
///
/// ```
/// let limiter = ownsync::CapacityLimiter::new(2);
/// let _token = limiter.try_acquire().unwrap(); // outside any owner: anonymous
/// let counts = limiter.statistics().permits();
/// assert_eq!((counts.available(), counts.total(), counts.held()), (1, 2, 1));
/// assert_eq!(counts.unlisted(), 1, "nobody is registered for it");
/// assert_eq!(counts.to_string(), "1 of 2 available");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermitCounts {
    pub(crate) available: usize,
    pub(crate) total: usize,
    pub(crate) held: usize,
    /// Permits of the holds listed beside these counts, orphans included.
    pub(crate) listed: usize,
}

impl PermitCounts {
    /// Free permits.
    pub fn available(&self) -> usize {
        self.available
    }
    /// The primitive's total: a limiter's `total_tokens`; a semaphore's permits as built,
    /// plus those added, less those forgotten (`forget_permits`, `SemaphorePermit::forget`).
    pub fn total(&self) -> usize {
        self.total
    }
    /// Permits out: taken and not given back (by guards, or granted to waiters that have
    /// not run yet). More than [`total`](Self::total) while a shrunk limiter is owed some.
    pub fn held(&self) -> usize {
        self.held
    }
    /// Held permits that no listed hold or orphan accounts for: taken anonymously (outside
    /// any tracked task or thread owner: nobody answers for them), or, for a semaphore,
    /// held by an owner that is not waiting anywhere (a semaphore does not keep a list of
    /// its holders: each hold is registered to its owner, where only the owner's own
    /// context may read it). Counted, never silently left out.
    pub fn unlisted(&self) -> usize {
        self.held.saturating_sub(self.listed)
    }
}

impl fmt::Display for PermitCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} available", self.available, self.total)
    }
}

/// `file:line:col`, or `unknown site`.
pub(crate) struct ShowSite(pub(crate) Site);

impl fmt::Display for ShowSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(site) => write!(f, "{}:{}:{}", site.file(), site.line(), site.column()),
            None => f.write_str("unknown site"),
        }
    }
}

/// A duration as people read it: `850ms`, `12.4s`, `3m05s`.
pub(crate) struct ShowDuration(pub(crate) Duration);

impl fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_secs(1) {
            write!(f, "{}ms", d.as_millis())
        } else if d < Duration::from_secs(60) {
            write!(f, "{:.1}s", d.as_secs_f64())
        } else {
            write!(f, "{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
        }
    }
}
