//! Who holds what, and what happens when they go away.
//!
//! An owner is a tracked task or a thread. Each owner has one record: its id, whether
//! (and how) it exited, and the holds registered to it. A hold is registered only when
//! its owner is known; anonymous holds (an async acquire outside any tracked task) pay
//! nothing for tracking. When the owner exits, it claims every hold still registered
//! and hands each to its primitive's [`Abandon`] hook, which breaks the primitive (or
//! reclaims the hold, per policy) and wakes every waiter.
//!
//! Tracking must be nearly free where it is common: a task that locks and unlocks within
//! its own polls. So the record keeps two lists. Holds taken and given back in the
//! owner's own context (its polls, or its thread) live in a local slab that only that
//! context touches: no lock, no atomic, and no reference count (a hold's ticket points
//! at the record without owning it; see [`HoldTicket`]). What another context does to a
//! hold (a guard dropped in another task, a permit split there) goes through the
//! record's locks. The exit, in the owner's context, takes them once, so a release
//! elsewhere racing the exit is decided exactly once: either the release wins and the
//! hold returns normally, or the exit wins and the release becomes a no-op.
//!
//! A hold can outlive its owner for good (a guard leaked with `mem::forget`), so the
//! exit frees all the record but its head, one word (see [`OwnerInner`]): a leaking
//! server loses 24 bytes of heap per leaked hold, not its owners' records.
//!
//! Lock order: a primitive's lot lock may be held while an owner record's locks are
//! taken (its stripe, then its body's lock), never the other way round (`exit` drops
//! them before calling `abandon`), and no code holds two records' locks at once.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, Ordering};

use slab::Slab;

use crate::error::AbandonReason;

/// Where a hold was taken: the user's call of the acquire (`#[track_caller]`), if known.
pub(crate) type Site = Option<&'static std::panic::Location<'static>>;

/// The site of the acquire being called: call it first thing in a `#[track_caller]`
/// entry point (an `async fn` cannot be one: the entry points return their future).
#[track_caller]
#[inline]
pub(crate) fn caller_site() -> Site {
    Some(std::panic::Location::caller())
}
use crate::loom::{AtomicBool, AtomicPtr, Mutex, UnsafeCell, owned_thread_local};

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
/// A borrower id that names no owner (an anonymous borrow): never an owner that exits.
const ANONYMOUS_BIT: u64 = 1 << 61;
static NEXT_TASK: AtomicU64 = AtomicU64::new(1);
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
/// Names of live named threads, for `Display` of their ids.
static THREAD_NAMES: std::sync::Mutex<BTreeMap<u64, Arc<str>>> = std::sync::Mutex::new(BTreeMap::new());
/// Published owners (see [`OwnerInner::publish`]) by raw id, for hand-overs by id. Not
/// part of any race the loom models check: what decides a hand-over racing an exit is
/// the record's own lock.
static REGISTRY: std::sync::Mutex<Option<HashMap<u64, Weak<OwnerInner>>>> = std::sync::Mutex::new(None);

impl OwnerId {
    /// A fresh id owned by nobody: the borrower of an anonymous (untracked async) borrow,
    /// or of one `acquire()` call among several of one owner's sub-futures.
    pub(crate) fn next_anonymous() -> Self {
        OwnerId(Self::next_task().0 | ANONYMOUS_BIT)
    }
    pub(crate) fn is_anonymous(self) -> bool {
        self.0 & (THREAD_BIT | ANONYMOUS_BIT) == ANONYMOUS_BIT
    }
    fn next_task() -> Self {
        OwnerId(NEXT_TASK.fetch_add(1, Ordering::Relaxed))
    }
    /// The identity of a runtime task that is not tracked, from the runtime's task id.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn runtime_task(number: u64) -> Self {
        OwnerId((number & !(THREAD_BIT | RUNTIME_BIT | ANONYMOUS_BIT)) | RUNTIME_BIT)
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

/// Who abandoned a hold: what a broken primitive's error and the events name.
pub(crate) struct Abandoner {
    pub(crate) id: OwnerId,
    /// A thread's name, kept so errors can name a thread after it ended.
    pub(crate) name: Option<Arc<str>>,
}

/// What a primitive does when an owner goes away holding something of it.
pub(crate) trait Abandon: Send + Sync {
    /// `owner` went away (`reason`) while certainly holding `permits` of this primitive,
    /// taken at `site`.
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, site: Site);
    /// `owner` went away while an owned hold it acquired, and that may have moved,
    /// was still registered to it: no evidence of abandonment, so it is
    /// only counted as orphaned until it is released or adopted ([`Claim::Orphaned`]).
    fn orphan(&self, owner: &Abandoner, permits: usize, site: Site, tag: OrphanTag);
    /// The orphaned hold `tag` (see [`HoldTicket::orphan_tag`]) was released or adopted.
    fn adopt_orphan(&self, tag: OrphanTag);
    /// An orphaned hold was split (see [`OrphanSplit`]): both halves stay orphans.
    fn split_orphan(&self, split: OrphanSplit) {
        let _ = split;
    }
    /// The orphaned hold `tag` has `permits` now (another hold was merged into it).
    fn resize_orphan(&self, tag: OrphanTag, permits: usize) {
        let _ = (tag, permits);
    }
    /// The completed nested scope this entry stands for, if it is one (see
    /// [`OwnerInner::complete`]); every primitive answers `None`.
    fn as_forwarded_scope(&self) -> Option<&ForwardedScope> {
        None
    }
    /// A hold of this primitive registered to the nested scope `from` now belongs to
    /// `to`, the scope that polled it (see [`OwnerInner::complete`]): if `from` is the
    /// recorded holder, `to` is from now on. Only a primitive that records its holder
    /// does anything.
    fn forward_holder(&self, from: OwnerId, to: OwnerId) {
        let _ = (from, to);
    }
}

/// Names an orphaned hold: see [`HoldTicket::orphan_tag`].
pub(crate) type OrphanTag = (usize, usize);

/// An orphaned hold `tag` split in two ([`Abandon::split_orphan`]): it keeps `kept`
/// permits, and the orphan `piece` ([`HoldTicket::orphan_piece`]) has the `taken`
/// others; `acquirer` is the exited owner both were registered to.
pub(crate) struct OrphanSplit {
    pub(crate) tag: OrphanTag,
    pub(crate) kept: usize,
    pub(crate) piece: OrphanTag,
    pub(crate) taken: usize,
    pub(crate) acquirer: OwnerId,
}

struct HoldEntry {
    primitive: Arc<dyn Abandon>,
    permits: usize,
    /// An owned hold that may have moved: orphaned, not abandoned, at the exit.
    moves: bool,
    /// Where it was taken, for the error of its abandonment.
    site: Site,
}

/// The holds registered from the owner's own context.
#[derive(Default)]
struct LocalHolds {
    holds: Slab<HoldEntry>,
    /// The entry of the hold released last in this context, left in the slab (not a hold
    /// any more), so that taking the same primitive again (a task that locks one mutex in
    /// a loop) reuses it as it is: no clone of the primitive, no entry moved.
    spare: Option<usize>,
}

impl LocalHolds {
    /// Records a hold of `permits` on the primitive at `identity`; returns its key.
    /// Always inline, as `register_hold` and `SemCore::register` around it: the
    /// registration's hot path, which the compiler otherwise inlined or not depending on
    /// unrelated edits (15-25 instructions per tracked lock, callgrind).
    #[inline(always)]
    fn insert(
        &mut self,
        identity: *const (),
        primitive: impl FnOnce() -> Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> usize {
        if let Some(key) = self.spare {
            let entry = &mut self.holds[key];
            if std::ptr::eq(Arc::as_ptr(&entry.primitive).cast::<()>(), identity) {
                entry.permits = permits;
                entry.moves = moves;
                entry.site = site;
                self.spare = None;
                return key;
            }
        }
        self.holds.insert(HoldEntry { primitive: primitive(), permits, moves, site })
    }

    /// Ends the hold at `key`, keeping its entry as the spare. Returns the entry of the
    /// previous spare, for the caller to drop once `local` is no longer borrowed.
    #[inline(always)]
    fn release(&mut self, key: usize) -> Option<HoldEntry> {
        match self.spare.replace(key) {
            None => None,
            Some(previous) => self.remove_entry(previous),
        }
    }

    /// Takes the entry at `key` out of the slab: out of line, for the same reason as
    /// [`drop_entry`]. If that leaves only the spare in a slab that a burst of holds
    /// grew past [`KEPT_LIVE_SLAB_CAPACITY`], the spare moves to a new, small slab and
    /// the large one is freed: a thread's record lives as long as the thread, and would
    /// otherwise keep the room for its most holds at once for good.
    #[cold]
    #[inline(never)]
    fn remove_entry(&mut self, key: usize) -> Option<HoldEntry> {
        let removed = self.holds.remove(key);
        if let Some(spare) =
            self.spare.filter(|_| self.holds.len() == 1 && self.holds.capacity() > KEPT_LIVE_SLAB_CAPACITY)
        {
            let entry = self.holds.remove(spare);
            // The old slab is empty now: freeing it drops no entry, so runs no user code.
            self.holds = Slab::new();
            self.spare = Some(self.holds.insert(entry));
        }
        Some(removed)
    }
}

/// A live record's hold slab keeps room for this many holds once they are released; a
/// larger one, grown by a burst of holds, is freed (see [`LocalHolds::remove_entry`]).
const KEPT_LIVE_SLAB_CAPACITY: usize = 64;

/// Drops an entry let go of by [`LocalHolds::release`]: out of line, since it is rare (a
/// task that alternates between primitives) and dropping an `Arc<dyn _>` is large.
#[cold]
#[inline(never)]
fn drop_entry(entry: Option<HoldEntry>) {
    drop(entry);
}

/// What other contexts do to the owner's holds, under the body's lock.
#[derive(Default)]
struct SharedHolds {
    /// Holds registered from elsewhere (a permit split in another task).
    holds: Slab<HoldEntry>,
    /// Keys of local holds released elsewhere, for the owner to drop from its slab.
    released_local: Vec<usize>,
}

/// One owner's record, shared by its tracked wrapper (or thread-local) and its holds.
///
/// Most holds are taken and given back by the owner's own code: a task locks and unlocks
/// within its polls, a thread within its run. That code reaches its holds with no atomic
/// operation at all. Only what happens in another context (a guard dropped in another
/// task, a permit split there) takes the record's locks (its stripe, then its body's),
/// and the exit, which runs in the owner's context, takes them once to settle every such
/// race.
///
/// The record is a small head (this type, one word) and a body ([`OwnerBody`]) with the
/// rest. The exit frees the body: a hold whose guard was leaked with `mem::forget` keeps
/// its ticket's count of the head, 24 bytes with its reference counts, and nothing else,
/// so that a server whose handlers leak under `Reclaim` can run for days. After the exit
/// the head answers what the leaked ticket may still ask: who the owner was, that it
/// exited and why.
///
/// The owner's context is the thread that is polling its `Tracked` (`CURRENT_TASK` is the
/// record) or dropping it, or, for a thread's record, that thread. Exactly one thread at a
/// time can be in it, and an executor that moves a task between threads orders its polls.
pub(crate) struct OwnerInner {
    /// The body while the owner lives; from its exit on, no pointer but the exit's reason
    /// and the owner's id (an odd value: see [`exited_word`]). Changed once, by the exit,
    /// in the owner's context and under the record's stripe lock ([`stripe_of`]): the
    /// owner's context reads it freely, any other context only under that lock.
    body: AtomicPtr<OwnerBody>,
    /// Where a pointer is too narrow to hold an exited owner's id too, the id.
    #[cfg(not(target_pointer_width = "64"))]
    id: OwnerId,
    #[cfg(loom)]
    stripe: Stripe,
}

/// What an owner's record holds while the owner lives (see [`OwnerInner`]).
struct OwnerBody {
    id: OwnerId,
    name: Option<Arc<str>>,
    /// Touched only in the owner's context.
    local: UnsafeCell<LocalHolds>,
    shared: Mutex<SharedHolds>,
    /// A hint that `shared.released_local` has keys: checked with a plain load.
    released_elsewhere: AtomicBool,
    /// Whether the id was given out ([`OwnerInner::publish`]), so that a hand-over can
    /// find the record by id; the exit unpublishes it.
    published: std::sync::atomic::AtomicBool,
    /// The owner completed inside an enclosing scope and passed its holds to it
    /// ([`OwnerInner::complete`]): never published again, so nothing more is handed to it.
    forwarded: std::sync::atomic::AtomicBool,
}

// SAFETY: `local` is only reached in the owner's context (see `OwnerInner`), which one
// thread at a time is in; everything else is behind `shared`'s lock or atomic.
unsafe impl Sync for OwnerBody {}

impl OwnerBody {
    fn new(id: OwnerId, name: Option<Arc<str>>) -> Self {
        OwnerBody {
            id,
            name,
            local: UnsafeCell::new(LocalHolds::default()),
            shared: Mutex::new(SharedHolds::default()),
            released_elsewhere: AtomicBool::new(false),
            published: std::sync::atomic::AtomicBool::new(false),
            forwarded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `f` on the local holds.
    ///
    /// # Safety
    /// Only in the owner's context, and `f` must not run anything that could reach
    /// `local` again (a hold's drop, a primitive's `abandon`).
    #[inline]
    unsafe fn with_local<R>(&self, f: impl FnOnce(&mut LocalHolds) -> R) -> R {
        // SAFETY: the caller is in the owner's context, the only one that reaches `local`,
        // and `f` does not reach it again, so this is the only reference to it.
        self.local.with_mut(|local| f(unsafe { &mut *local }))
    }

    /// Takes out the local holds that were released elsewhere, for the caller to drop
    /// once `local` is no longer borrowed. Owner's context only; call with `shared` locked.
    fn take_released_elsewhere(&self, local: &mut LocalHolds, shared: &mut SharedHolds) -> Vec<HoldEntry> {
        self.released_elsewhere.store(false, Relaxed);
        shared.released_local.drain(..).map(|key| local.holds.remove(key)).collect()
    }

    /// Who to name for this owner: its id, and its thread's name if it has one.
    fn abandoner(&self) -> Abandoner {
        Abandoner { id: self.id, name: self.name.clone() }
    }

    /// How many holds are registered now. In the owner's context only (or, for a
    /// forwarded scope, its enclosing owner's: see [`OwnerInner::complete`]).
    fn live_holds(&self) -> usize {
        // SAFETY: the callers are in the context that alone reaches `local`; the closure
        // only counts.
        let local =
            unsafe { self.with_local(|local| local.holds.len() - usize::from(local.spare.is_some())) };
        let shared = self.shared.lock();
        local - shared.released_local.len() + shared.holds.len()
    }
}

/// What a record's `body` holds once its owner exited: the reason and (on 64-bit
/// targets) the owner's id, in an odd value that no body's address is, so that the head
/// needs no other field. Bit 0 is set, bits 1-2 are the reason, bit 3 says a thread,
/// and the rest is the id's number: records are only made for tasks and threads, whose
/// numbers count up from 1 and so stay far below 2^60.
fn exited_word(reason: AbandonReason, id: OwnerId) -> *mut OwnerBody {
    let code = match reason {
        AbandonReason::Exited => 0,
        AbandonReason::Cancelled => 1,
        AbandonReason::Panicked => 2,
        // No in-process owner exits this way (only a fleet holder's lease does); kept
        // apart so that the word never says a reason other than the one given.
        AbandonReason::LeaseExpired => 3,
    };
    #[cfg(target_pointer_width = "64")]
    let id = (usize::from(id.is_thread()) << 3) | ((id.number() as usize) << 4);
    #[cfg(not(target_pointer_width = "64"))]
    let id = {
        let _ = id;
        0
    };
    std::ptr::without_provenance_mut(1 | code << 1 | id)
}

/// The id an exited record's word holds (see [`exited_word`]).
#[cfg(target_pointer_width = "64")]
#[cold]
fn exited_id(word: *mut OwnerBody) -> OwnerId {
    let number = (word.addr() >> 4) as u64;
    if word.addr() & 1 << 3 != 0 { OwnerId(number | THREAD_BIT) } else { OwnerId(number) }
}

/// The body a record's `body` word points at, or the reason its owner exited.
#[inline]
fn read_word(word: *mut OwnerBody) -> Result<NonNull<OwnerBody>, AbandonReason> {
    if word.addr() & 1 == 0 {
        // SAFETY: an even word is the pointer of the body's `Box`, never null.
        return Ok(unsafe { NonNull::new_unchecked(word) });
    }
    Err(exit_reason(word))
}

/// The reason an exited record's word holds (see [`exited_word`]).
#[cold]
fn exit_reason(word: *mut OwnerBody) -> AbandonReason {
    match word.addr() >> 1 & 0b11 {
        0 => AbandonReason::Exited,
        1 => AbandonReason::Cancelled,
        2 => AbandonReason::Panicked,
        _ => AbandonReason::LeaseExpired,
    }
}

/// One lock of the stripes that keep a record's body alive for a context other than its
/// owner's: the exit frees the body only after detaching it under its record's stripe,
/// and every other context reaches the body only while holding that stripe. Taken only on
/// the cold paths (a release elsewhere, a hand-over, an exit); aligned to a cache line so
/// that exits of owners on different stripes do not share one.
#[repr(align(64))]
struct Stripe(Mutex<()>);

#[cfg(not(loom))]
const STRIPES: usize = 64;
#[cfg(not(loom))]
static STRIPE_LOCKS: [Stripe; STRIPES] = [const { Stripe(Mutex::new(())) }; STRIPES];

/// The stripe that guards `record`'s body.
#[cfg(not(loom))]
fn stripe_of(record: &OwnerInner) -> &'static Mutex<()> {
    // Records are 8-aligned and at least 24 bytes apart: drop the low bits they share.
    let address = std::ptr::from_ref(record).addr();
    &STRIPE_LOCKS[(address >> 4) % STRIPES].0
}

/// Under loom, each record's own lock in its head: loom's statics cannot be reached from
/// the thread-local destructors where threads exit. Same protocol, a lock outside the body.
#[cfg(loom)]
fn stripe_of(record: &OwnerInner) -> &Mutex<()> {
    &record.stripe.0
}

impl OwnerInner {
    fn new(id: OwnerId, name: Option<Arc<str>>) -> Self {
        OwnerInner {
            body: AtomicPtr::new(Box::into_raw(spare_body::reuse(id, name))),
            #[cfg(not(target_pointer_width = "64"))]
            id,
            #[cfg(loom)]
            stripe: Stripe(Mutex::new(())),
        }
    }

    /// The body, or the reason the owner exited.
    ///
    /// # Safety
    /// In the owner's context (the only one that frees the body, at its exit), or holding
    /// the record's stripe lock; the reference must not be used past the owner's exit.
    #[inline]
    unsafe fn body(&self) -> Result<&OwnerBody, AbandonReason> {
        // SAFETY: a live word points at the body, which the caller's context keeps alive
        // (see above); nothing reaches it mutably but through its cells and locks.
        read_word(self.body.load(Relaxed)).map(|body| unsafe { body.as_ref() })
    }

    /// Runs `f` on the body (or the exit's reason) from any context: under the record's
    /// stripe lock, so that the exit cannot free the body meanwhile. `f` must not take
    /// another record's stripe or call out of this module.
    fn with_body<R>(&self, f: impl FnOnce(Result<&OwnerBody, AbandonReason>) -> R) -> R {
        let _stripe = stripe_of(self).lock();
        // SAFETY: under the record's stripe lock, held until `f` returns.
        f(unsafe { self.body() })
    }

    /// Runs `f` on the local holds in the owner's context; `None` once it exited.
    ///
    /// # Safety
    /// As [`OwnerBody::with_local`].
    #[inline]
    unsafe fn with_local<R>(&self, f: impl FnOnce(&mut LocalHolds) -> R) -> Option<R> {
        // SAFETY: in the owner's context (the caller's contract), for the length of `f`.
        let body = unsafe { self.body() }.ok()?;
        // SAFETY: the caller's contract.
        Some(unsafe { body.with_local(f) })
    }

    /// Makes the record findable by its id ([`live_record`]) until it exits: done when
    /// the id is given out (`Tracked::owner`, `current_owner`), so only owners whose id
    /// can be named pay for the lookup table.
    pub(crate) fn publish(self: &Arc<Self>) {
        // Marked under the stripe, under which the exit detaches the body before it reads
        // the mark to unpublish.
        let first = self.with_body(|body| {
            let body = body.ok()?;
            (!body.forwarded.load(Relaxed) && !body.published.swap(true, Relaxed)).then_some(body.id)
        });
        let Some(id) = first else { return };
        // No other lock is taken while the table's is held (loom's threads share one OS
        // thread, so a loom lock taken under a `std` one could hang a model).
        REGISTRY
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(id.0, Arc::downgrade(self));
        // An exit that ran meanwhile may have unpublished before this insert: an exited
        // record must stay out (a hand-over to it must fail), so take it out again.
        if self.has_exited() {
            unpublish(id);
        }
    }

    fn has_exited(&self) -> bool {
        read_word(self.body.load(Relaxed)).is_err()
    }

    pub(crate) fn new_task() -> Arc<Self> {
        Arc::new(Self::new(OwnerId::next_task(), None))
    }

    /// The owner's id, from any context.
    pub(crate) fn id(&self) -> OwnerId {
        self.with_body(|body| body.map_or_else(|_| self.exited_id(), |body| body.id))
    }

    /// The owner's id, read in its context (no lock).
    ///
    /// # Safety
    /// In the owner's context.
    #[inline]
    unsafe fn id_here(&self) -> OwnerId {
        // SAFETY: the caller's contract.
        match unsafe { self.body() } {
            Ok(body) => body.id,
            Err(_) => self.exited_id(),
        }
    }

    /// The id an exited record keeps.
    fn exited_id(&self) -> OwnerId {
        #[cfg(target_pointer_width = "64")]
        return exited_id(self.body.load(Relaxed));
        #[cfg(not(target_pointer_width = "64"))]
        return self.id;
    }

    /// Who to name: the owner, with its thread's name while its record still has it.
    fn abandoner(&self) -> Abandoner {
        self.with_body(|body| match body {
            Ok(body) => body.abandoner(),
            Err(_) => Abandoner { id: self.exited_id(), name: None },
        })
    }

    /// Whether the code running now is in this owner's context.
    #[inline(always)]
    fn is_current(&self) -> bool {
        let here = current_context_ptr();
        std::ptr::eq(here, self)
    }

    /// Marks the owner exited and abandons every hold still registered to it.
    /// Idempotent: only the first exit counts.
    ///
    /// Each abandoned hold's ticket keeps a strong count of the record's head from here
    /// on (see [`HoldTicket`]), so a guard that outlives its owner can still ask it what
    /// happened; the body is freed here.
    ///
    /// Call it only in the owner's context: from its `Tracked`'s poll or drop, or from
    /// its thread's thread-local destructor.
    pub(crate) fn exit(self: &Arc<Self>, reason: AbandonReason) {
        self.exit_as(reason, None);
    }

    /// [`OwnerInner::exit`], naming `abandoner` (else this owner) in what breaks.
    fn exit_as(self: &Arc<Self>, reason: AbandonReason, abandoner: Option<&Abandoner>) {
        // The owner's context: the only one that changes the word, so it is still this.
        let Ok(body) = read_word(self.body.load(Relaxed)) else { return };
        let record = Arc::as_ptr(self) as usize;
        let (released, abandoned) = {
            let _stripe = stripe_of(self).lock();
            // SAFETY: the owner's context, and the word still points at the body.
            let body_ref = unsafe { body.as_ref() };
            // SAFETY: the owner's context. The closure drops no entry and calls no
            // `abandon`: it moves the entries out for the code below.
            let taken = unsafe {
                body_ref.with_local(|local| {
                    let mut shared = body_ref.shared.lock();
                    let mut released = body_ref.take_released_elsewhere(local, &mut shared);
                    released.extend(local.spare.take().map(|key| local.holds.remove(key)));
                    // An empty slab stays, with its allocation, for the body's next
                    // record (see `spare_body`).
                    let holds =
                        if local.holds.is_empty() { Slab::new() } else { std::mem::take(&mut local.holds) };
                    let abandoned: Vec<(OrphanTag, HoldEntry)> = holds
                        .into_iter()
                        .map(|(key, entry)| ((record, key), entry))
                        .chain(
                            std::mem::take(&mut shared.holds)
                                .into_iter()
                                .map(|(key, entry)| ((record, key | SHARED_SLOT), entry)),
                        )
                        .collect();
                    // One strong count per ticket left out there, taken before the body
                    // is detached: a ticket that sees the exit gives its count back.
                    for _ in &abandoned {
                        std::mem::forget(Arc::clone(self));
                    }
                    (released, abandoned)
                })
            };
            self.body.store(exited_word(reason, body_ref.id), Relaxed);
            taken
        };
        // SAFETY: detached under the stripe lock: no other context reaches the body from
        // here on, and this, the owner's context, is done with it, so the `Box` is ours.
        let body = unsafe { Box::from_raw(body.as_ptr()) };
        if body.published.load(Relaxed) {
            unpublish(body.id);
        }
        let own = body.abandoner();
        spare_body::keep(body);
        if !abandoned.is_empty() {
            let abandoner = abandoner.unwrap_or(&own);
            // Every hold was claimed above, so each must be settled here even if one
            // primitive's `abandon` panics (a waker's `wake` may): a claimed hold that is
            // not abandoned is neither broken nor released, and its waiters would hang.
            crate::lot::run_all(abandoned, |(tag, hold)| {
                if hold.moves {
                    hold.primitive.orphan(abandoner, hold.permits, hold.site, tag);
                } else {
                    hold.primitive.abandon(abandoner, reason, hold.permits, hold.site);
                }
            });
        }
        // Last: an entry may hold a primitive's last reference, whose drop is best left
        // until every abandoned hold is settled.
        drop(released);
    }

    /// How many holds are registered to the owner now. In the owner's context only (or,
    /// for a forwarded scope, its enclosing owner's: see [`OwnerInner::complete`]).
    fn live_holds(&self) -> usize {
        // SAFETY: the callers are in the owner's context.
        unsafe { self.body() }.map_or(0, OwnerBody::live_holds)
    }

    #[cfg(test)]
    pub(crate) fn registered_holds(&self) -> usize {
        self.live_holds()
    }

    /// Tells every primitive this record holds (also through the nested scopes passed
    /// to it) that the holds recorded as `from`'s are `to`'s now: see
    /// [`Abandon::forward_holder`]. In this record's context, or (a forwarded scope's)
    /// its enclosing owner's.
    fn forward_holders(&self, from: OwnerId, to: OwnerId) {
        // SAFETY: the callers are in the context that alone reaches `local`.
        let Ok(body) = (unsafe { self.body() }) else { return };
        // SAFETY: as above; the closure only clones `Arc`s, and the primitives are told
        // after it.
        let primitives: Vec<Arc<dyn Abandon>> = unsafe {
            body.with_local(|local| {
                let shared = body.shared.lock();
                local
                    .holds
                    .iter()
                    .filter(|(key, _)| Some(*key) != local.spare && !shared.released_local.contains(key))
                    .map(|(_, entry)| entry.primitive.clone())
                    .chain(shared.holds.iter().map(|(_, entry)| entry.primitive.clone()))
                    .collect()
            })
        };
        for primitive in primitives {
            primitive.forward_holder(from, to);
        }
    }

    /// The owner's future completed, polled by `enclosing`'s context (null if none): its
    /// exit, or, if it still holds something and an enclosing tracked scope polled it,
    /// a hand-over of all of it to that scope (a scope's output carries its holds to
    /// whoever polled it). Call it from the owner's context, as its last act.
    ///
    /// The holds' tickets point at this record, so they are not moved: the record itself
    /// is registered to the enclosing owner as one entry, a [`ForwardedScope`], whose
    /// abandonment (the enclosing owner's exit) exits this record with the same reason,
    /// naming the enclosing owner. Nobody's context is this record's any more (its
    /// `Tracked` is never polled again), so every release of its holds takes the locked
    /// path, and its local slab is reached only from the enclosing owner's context: by
    /// that exit, or by the pruning in this function, which lets entries whose holds
    /// were all released go, so that a loop of nested scopes does not grow its owner.
    pub(crate) fn complete(self: &Arc<Self>, enclosing: *const OwnerInner) {
        // Nested scopes this one passed holds to, whose holds are all released since, are
        // let go first: otherwise they would count as its live holds, and this scope
        // would be passed on, spent, to its own enclosing scope, for good.
        ForwardedScope::prune_spent(RecordRef::of(self));
        if enclosing.is_null() || self.live_holds() == 0 {
            return self.exit(AbandonReason::Exited);
        }
        // SAFETY: a non-null enclosing pointer is the CURRENT_TASK this scope's poll
        // replaced: set from `Arc::as_ptr` of the enclosing `Tracked`'s record, which
        // that `Tracked` keeps alive while it polls us, and its context is the code
        // running now.
        let parent = unsafe { RecordRef::from_raw(enclosing) };
        debug_assert!(parent.is_current());
        let was_published = self.with_body(|body| {
            body.map(|body| {
                body.forwarded.store(true, Relaxed);
                body.published.swap(false, Relaxed).then_some(body.id)
            })
        });
        match was_published {
            Ok(Some(id)) => unpublish(id),
            Ok(None) => {}
            // Exited already: it has nothing left to pass on.
            Err(_) => return,
        }
        // Its exclusive holds are the enclosing owner's now, and so is being their
        // recorded holder (a re-lock there is a self-wait).
        // SAFETY: the enclosing owner's context (asserted above).
        let parent_id = unsafe { parent.id_here() };
        self.forward_holders(self.id(), parent_id);
        ForwardedScope::prune_spent(parent);
        let scope = Arc::new(ForwardedScope { record: self.clone(), ticket: Mutex::new(None) });
        match parent.register(scope.clone(), 0, false, None) {
            Ok(ticket) => *scope.ticket.lock() = Some(ticket),
            // The enclosing owner has exited (polled again after a panicking poll): this
            // scope has nobody to pass its holds to.
            Err(_) => self.exit(AbandonReason::Exited),
        }
    }
}

/// A spare body per thread: the body of the last record that exited on it, for the next
/// record made there, so that a task spawned and finished on one thread (the common case)
/// allocates only its record's head.
mod spare_body {
    use super::{Arc, OwnerBody, OwnerId};
    #[cfg(not(loom))]
    use slab::Slab;
    #[cfg(not(loom))]
    use std::cell::Cell;

    #[cfg(not(loom))]
    std::thread_local! {
        static SPARE: Cell<Option<Box<OwnerBody>>> = const { Cell::new(None) };
    }

    /// A spare's hold slab is kept for the next record up to this many entries; a larger
    /// one (a task that held many things at once) is freed rather than kept per thread.
    #[cfg(not(loom))]
    const KEPT_SLAB_CAPACITY: usize = 16;

    /// A body for a new record: this thread's spare, made new, if there is one. Its hold
    /// slab (empty, but with its allocation) is kept, so a task that holds something
    /// allocates nothing for that either.
    pub(super) fn reuse(id: OwnerId, name: Option<Arc<str>>) -> Box<OwnerBody> {
        #[cfg(not(loom))]
        if let Some(mut spare) = SPARE.try_with(Cell::take).ok().flatten() {
            // An exited body: its exit emptied the slabs and the released list (checked
            // below) and cleared the hint; what else it knew of its record goes here.
            spare.id = id;
            spare.name = name;
            *spare.published.get_mut() = false;
            *spare.forwarded.get_mut() = false;
            let local = spare.local.get_mut();
            debug_assert!(local.holds.is_empty() && local.spare.is_none());
            return spare;
        }
        Box::new(OwnerBody::new(id, name))
    }

    /// Whether `body` is this thread's spare now.
    #[cfg(all(test, not(loom)))]
    pub(super) fn is_kept(body: *mut OwnerBody) -> bool {
        SPARE.with(|spare| {
            let kept = spare.take();
            let is = kept.as_deref().is_some_and(|kept| std::ptr::eq(kept, body));
            spare.set(kept);
            is
        })
    }

    /// Keeps an exited record's body (detached: nobody else reaches it) as this thread's
    /// spare, freeing the previous spare; a hold slab above `KEPT_SLAB_CAPACITY` is freed.
    pub(super) fn keep(body: Box<OwnerBody>) {
        #[cfg(not(loom))]
        {
            let mut body = body;
            // A large slab is let go now, not kept on the thread until its next record.
            let local = body.local.get_mut();
            if local.holds.capacity() > KEPT_SLAB_CAPACITY {
                local.holds = Slab::new();
            }
            // The body goes in the slot, the previous spare (if any) is freed; when the
            // thread's locals are gone already, the body is freed here.
            let _ = SPARE.try_with(|spare| drop(spare.replace(Some(body))));
        }
        #[cfg(loom)]
        drop(body);
    }
}

/// Takes a published record's id out of the lookup table (its exit, or its scope's
/// completion: see [`OwnerInner::complete`]).
fn unpublish(id: OwnerId) {
    let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(map) = registry.as_mut() {
        map.remove(&id.0);
    }
}

impl Drop for OwnerInner {
    fn drop(&mut self) {
        // An exit's change of the word happened before the last reference went: `Arc`'s
        // release and acquire order it. Loom does not see `std`'s `Arc`, so under loom
        // the stripe the exit changed it under orders it instead.
        #[cfg(loom)]
        let _stripe = stripe_of(self).lock();
        if let Ok(body) = read_word(self.body.load(Relaxed)) {
            // SAFETY: the last reference to the record: nobody else reaches the body.
            drop(unsafe { Box::from_raw(body.as_ptr()) });
        }
    }
}

/// How many holds the owner whose context this is has registered.
#[cfg(test)]
pub(crate) fn live_holds_of_current() -> usize {
    with_owner(Caller::Blocking, |owner| owner.live_holds()).unwrap_or(0)
}

/// A completed nested scope's record, registered as one hold of the owner that polled
/// it (see [`OwnerInner::complete`]).
pub(crate) struct ForwardedScope {
    record: Arc<OwnerInner>,
    /// Its registration to the enclosing owner, given back when it is abandoned or pruned.
    ticket: Mutex<Option<HoldTicket>>,
}

impl ForwardedScope {
    /// Lets go of the forwarded scopes registered to `owner` whose holds were all
    /// released, at every depth: a forwarded scope's own spent forwards go first, so
    /// that one which holds nothing else is spent too. In `owner`'s context (a completed
    /// scope's is its enclosing owner's: see [`OwnerInner::complete`]).
    fn prune_spent(owner: RecordRef<'_>) {
        // SAFETY: in the owner's context (see `complete`). The closure only clones `Arc`s;
        // it reads no other record, drops and gives back nothing.
        let forwarded: Vec<Arc<dyn Abandon>> = unsafe {
            owner.with_local(|local| {
                local
                    .holds
                    .iter()
                    .filter(|(key, _)| Some(*key) != local.spare)
                    .filter(|(_, entry)| entry.primitive.as_forwarded_scope().is_some())
                    .map(|(_, entry)| entry.primitive.clone())
                    .collect()
            })
        }
        .unwrap_or_default();
        for entry in forwarded {
            let Some(scope) = entry.as_forwarded_scope() else { continue };
            // The forwarded record's context is its enclosing owner's, so `owner`'s: its
            // local slab is reached from here (see `complete`).
            Self::prune_spent(RecordRef::of(&scope.record));
            if scope.record.live_holds() == 0 {
                let ticket = scope.ticket.lock().take();
                drop(ticket);
            }
        }
    }
}

impl Abandon for ForwardedScope {
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, _: usize, _: Site) {
        // The enclosing owner exited with this scope's holds: they are its abandonment.
        self.record.exit_as(reason, Some(owner));
        let ticket = self.ticket.lock().take();
        drop(ticket);
    }
    fn orphan(&self, _: &Abandoner, _: usize, _: Site, _: OrphanTag) {
        unreachable!("a forwarded scope is registered as a hold that does not move")
    }
    fn adopt_orphan(&self, _: OrphanTag) {}
    fn as_forwarded_scope(&self) -> Option<&ForwardedScope> {
        Some(self)
    }
    fn forward_holder(&self, from: OwnerId, to: OwnerId) {
        // The scope's holds were passed on to `from` (its enclosing owner, completing
        // now), and recorded as held by it then.
        self.record.forward_holders(from, to);
    }
}

/// Drops the local holds released elsewhere from `body`'s slab, so their keys are reused.
/// In the owner's context.
#[cold]
#[inline(never)]
fn sweep_released_elsewhere(body: &OwnerBody) {
    // SAFETY: in the owner's context (see `register_here`); the closure moves the entries
    // out, and they are dropped after it.
    let released =
        unsafe { body.with_local(|local| body.take_released_elsewhere(local, &mut body.shared.lock())) };
    drop(released);
}

/// A borrowed owner record, as the raw pointer its `Arc` gave (`Arc::as_ptr`): a ticket
/// made from it may give a strong count back through it, which a pointer taken from a
/// plain `&OwnerInner` may not.
#[derive(Clone, Copy)]
struct RecordRef<'a> {
    ptr: NonNull<OwnerInner>,
    life: PhantomData<&'a OwnerInner>,
}

impl<'a> RecordRef<'a> {
    fn of(record: &'a Arc<OwnerInner>) -> Self {
        // SAFETY: `Arc::as_ptr` is never null, and the record lives as long as the `Arc`.
        unsafe { Self::from_raw(Arc::as_ptr(record)) }
    }

    /// # Safety
    /// `ptr` comes from `Arc::as_ptr` of a record that stays alive for `'a`.
    unsafe fn from_raw(ptr: *const OwnerInner) -> Self {
        // SAFETY: the caller passes a non-null pointer from `Arc::as_ptr`.
        RecordRef { ptr: unsafe { NonNull::new_unchecked(ptr.cast_mut()) }, life: PhantomData }
    }

    /// A strong count of the record, for what must keep or downgrade it (a hand-over's
    /// target, the lookup table's weak reference).
    fn to_arc(self) -> Arc<OwnerInner> {
        let ptr = self.ptr.as_ptr().cast_const();
        // SAFETY: a `RecordRef` holds a pointer from `Arc::as_ptr` of a record alive for
        // `'a` (see `from_raw`), so a strong count may be taken through it and owned.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// Registers a hold from the owner's own context; returns the owner's id with the
    /// ticket. Fails with the exit reason if the owner already exited (the caller must
    /// then treat the hold as anonymous). `identity` is the address of the primitive that
    /// `primitive` clones.
    #[inline]
    fn register_here(
        self,
        identity: *const (),
        primitive: impl FnOnce() -> Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> (OwnerId, Result<HoldTicket, AbandonReason>) {
        debug_assert!(self.is_current());
        // SAFETY: in the owner's context (the caller found the record there).
        let body = match unsafe { self.body() } {
            Ok(body) => body,
            Err(reason) => return (self.exited_id(), Err(reason)),
        };
        if body.released_elsewhere.load(Relaxed) {
            sweep_released_elsewhere(body);
        }
        // SAFETY: in the owner's context; the closure only moves `primitive` into the slab.
        let key = unsafe { body.with_local(|local| local.insert(identity, primitive, permits, moves, site)) };
        (body.id, Ok(HoldTicket { owner: self.ptr, slot: key | moves_flag(moves) }))
    }

    /// Registers a hold from another context.
    fn register_elsewhere(
        self,
        primitive: Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> Result<HoldTicket, AbandonReason> {
        // Moved in only if it is registered: a refusal drops it after the stripe lock,
        // since dropping a primitive may drop anything, holds of other records included.
        let mut primitive = Some(primitive);
        let key = self.with_body(|body| {
            body.map(|body| {
                let primitive = primitive.take().expect("registered once");
                body.shared.lock().holds.insert(HoldEntry { primitive, permits, moves, site })
            })
        })?;
        Ok(HoldTicket { owner: self.ptr, slot: key | SHARED_SLOT | moves_flag(moves) })
    }

    /// Registers a hold from whichever context the code running now is in.
    fn register(
        self,
        primitive: Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> Result<HoldTicket, AbandonReason> {
        if self.is_current() {
            self.register_here(Arc::as_ptr(&primitive).cast(), || primitive, permits, moves, site).1
        } else {
            self.register_elsewhere(primitive, permits, moves, site)
        }
    }
}

impl std::ops::Deref for RecordRef<'_> {
    type Target = OwnerInner;
    fn deref(&self) -> &OwnerInner {
        // SAFETY: the record is alive for the borrow's lifetime (see `from_raw`).
        unsafe { self.ptr.as_ref() }
    }
}

/// Marks a ticket's slot as one in the record's shared slab.
const SHARED_SLOT: usize = 1 << (usize::BITS - 1);
/// Marks a ticket of an owned hold that may move: orphaned, not abandoned, at the exit.
const MOVES: usize = 1 << (usize::BITS - 2);
/// Marks a ticket already given back (claimed by the exit, or unregistered): it never
/// touches its record again, and anything asked of it answers "not ours".
const DEAD: usize = 1 << (usize::BITS - 3);
const SLOT_KEY: usize = !(SHARED_SLOT | MOVES | DEAD);
/// The keys of the pieces split off an orphan ([`HoldTicket::orphan_piece`]): above any
/// slab key, so that their tags never name a hold the exit claimed.
const PIECE_KEYS: usize = 1 << (usize::BITS - 4);
/// The next piece's key, below [`PIECE_KEYS`] (unique per record and run, but for a
/// wrap-around after 2^60 splits on 64-bit targets).
static NEXT_PIECE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn moves_flag(moves: bool) -> usize {
    if moves { MOVES } else { 0 }
}

/// Proof that a hold is registered to an owner. Dropping it gives the registration back
/// without releasing anything; [`HoldTicket::unregister`] says whether it was still ours.
///
/// The ticket points at its owner's record without owning a count of it. That is sound
/// because a live ticket keeps the record alive either way: until the owner exits, its
/// `Tracked` (or thread-local) holds the record; at the exit, the hold is still
/// registered (the ticket has not given it back), so the exit takes one strong count for
/// this ticket, which the ticket gives back when it is done. A ticket that is never done
/// (its guard leaked with `mem::forget`) keeps the record's head, 24 bytes,
/// for good: a small leak beside the one the caller chose.
pub(crate) struct HoldTicket {
    owner: NonNull<OwnerInner>,
    /// The key in the local slab, or with `SHARED_SLOT` in the shared one.
    slot: usize,
}

// SAFETY: a ticket reaches its record only through the record's locks, or in the owner's
// context (checked on the thread doing it), so it may move and be shared across threads.
unsafe impl Send for HoldTicket {}
// SAFETY: see above; `&HoldTicket` only reads the id.
unsafe impl Sync for HoldTicket {}

/// What giving a ticket back found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The hold was still registered: the caller now has it to release.
    Ours,
    /// The owner's exit claimed it first and abandoned it (broken or reclaimed): the
    /// caller must not release it.
    Abandoned,
    /// The owner's exit claimed an owned hold that may have moved and counted it as
    /// orphaned: it is still the caller's, to release or hand over, once it tells the
    /// primitive ([`Abandon::adopt_orphan`]).
    Orphaned,
}

impl HoldTicket {
    /// The ticket as its two words, for a place that keeps them apart (a mutex's cell for
    /// its exclusive hold: see `SemCore::put_exclusive_hold`); [`from_words`](Self::from_words)
    /// puts it back together.
    pub(crate) fn into_words(self) -> (NonNull<()>, usize) {
        let ticket = std::mem::ManuallyDrop::new(self);
        (ticket.owner.cast(), ticket.slot)
    }

    /// # Safety
    /// `owner` and `slot` are the words of one ticket from [`into_words`](Self::into_words),
    /// put back together once.
    pub(crate) unsafe fn from_words(owner: NonNull<()>, slot: usize) -> Self {
        HoldTicket { owner: owner.cast(), slot }
    }

    /// A ticket already given back, standing for a hold abandoned without one: it never
    /// touches a record, and its hold's drop releases nothing.
    fn dead() -> Self {
        HoldTicket { owner: NonNull::dangling(), slot: DEAD }
    }

    fn record(&self) -> RecordRef<'_> {
        debug_assert!(self.slot & DEAD == 0, "a dead ticket has no record");
        // SAFETY: the pointer came from a `RecordRef`, so from `Arc::as_ptr`, and a live
        // ticket keeps its record alive (see the type's docs).
        unsafe { RecordRef::from_raw(self.owner.as_ptr()) }
    }

    /// Whether the hold is still registered (or may be: an exit may be under way).
    pub(crate) fn is_live(&self) -> bool {
        self.slot & DEAD == 0
    }

    /// Whether this is an owned hold's ticket, orphaned rather than abandoned at the exit.
    pub(crate) fn moves(&self) -> bool {
        self.slot & MOVES != 0
    }

    /// The owner it is registered to, also after that owner's exit claimed it; `None`
    /// once given back.
    pub(crate) fn owner_id(&self) -> Option<OwnerId> {
        self.is_live().then(|| self.record().id())
    }

    /// The owner it is registered to, while that owner lives; `None` once its exit claimed
    /// the hold, or once given back.
    pub(crate) fn answering_owner(&self) -> Option<OwnerId> {
        if !self.is_live() {
            return None;
        }
        self.record().with_body(|body| body.ok().map(|body| body.id))
    }

    /// Where the hold was taken, if it can be read from here: in its owner's context, or
    /// for a hold in the shared slab.
    pub(crate) fn site(&self) -> Site {
        if !self.is_live() {
            return None;
        }
        let record = self.record();
        let key = self.slot & SLOT_KEY;
        if self.slot & SHARED_SLOT != 0 {
            return record.with_body(|body| body.ok()?.shared.lock().holds.get(key)?.site);
        }
        if record.is_current() {
            // SAFETY: in the owner's context; the closure only reads.
            return unsafe { record.with_local(|local| local.holds.get(key).and_then(|entry| entry.site)) }
                .flatten();
        }
        None
    }

    /// What names this hold among its primitive's orphans, should its owner's exit have
    /// orphaned it: its record's address and slot. Unique among listed orphans, since an
    /// orphan's ticket keeps its record (and so the address) alive until it is adopted.
    #[inline]
    pub(crate) fn orphan_tag(&self) -> OrphanTag {
        (self.owner.as_ptr() as usize, self.slot & (SLOT_KEY | SHARED_SLOT))
    }

    /// Who would be named if this hold were abandoned now.
    pub(crate) fn abandoner(&self) -> Option<Abandoner> {
        self.is_live().then(|| self.record().abandoner())
    }

    /// What the exit's claim of this hold made of it.
    fn claimed(&self) -> Claim {
        if self.moves() { Claim::Orphaned } else { Claim::Abandoned }
    }

    /// Takes the registration back (or learns that the exit took it), once. The common
    /// case, a local hold given back in its owner's context, is kept small and inline;
    /// the rest is in [`HoldTicket::claim_elsewhere`].
    #[inline(always)]
    fn claim(&self) -> Claim {
        let record = self.record();
        if self.slot & SHARED_SLOT != 0 || !record.is_current() {
            return self.claim_elsewhere();
        }
        let key = self.slot & SLOT_KEY;
        // SAFETY: in the owner's context. The removed entry is dropped after the
        // closure: its `Arc` may be the primitive's last, and dropping that must not
        // happen while `local` is borrowed.
        let removed = unsafe { record.with_local(|local| local.release(key)) };
        match removed {
            Some(previous_spare) => {
                if previous_spare.is_some() {
                    drop_entry(previous_spare);
                }
                Claim::Ours
            }
            None => self.claimed(),
        }
    }

    /// [`HoldTicket::claim`] of a hold in the shared slab, or from outside its owner's
    /// context: through the record's locks.
    #[cold]
    #[inline(never)]
    fn claim_elsewhere(&self) -> Claim {
        let claimed = self.claimed();
        let record = self.record();
        let key = self.slot & SLOT_KEY;
        if self.slot & SHARED_SLOT != 0 {
            // The entry is dropped after the stripe lock (see `register_elsewhere`).
            let removed = record.with_body(|body| body.ok()?.shared.lock().holds.try_remove(key));
            return match removed {
                Some(_) => Claim::Ours,
                None => claimed,
            };
        }
        record.with_body(|body| match body {
            Err(_) => claimed,
            Ok(body) => {
                body.shared.lock().released_local.push(key);
                body.released_elsewhere.store(true, Relaxed);
                Claim::Ours
            }
        })
    }

    /// Claims the hold back, once; if the exit claimed it first, gives back the count
    /// the exit took for this ticket (the record may be freed then). The ticket is dead
    /// afterwards. A dead ticket answers `Abandoned` and touches nothing.
    #[inline(always)]
    pub(crate) fn give_back(&mut self) -> Claim {
        if !self.is_live() {
            return Claim::Abandoned;
        }
        let claim = self.claim();
        if claim != Claim::Ours {
            self.return_exit_count();
        }
        self.slot |= DEAD;
        claim
    }

    /// Gives back the strong count the exit took for this ticket.
    #[cold]
    #[inline(never)]
    fn return_exit_count(&self) {
        // SAFETY: the exit took one strong count for this ticket (it was still registered
        // then) and only this, called once from the ticket's single give-back (it is dead
        // from then on), returns it; nothing touches the record after this line.
        unsafe { Arc::decrement_strong_count(self.owner.as_ptr().cast_const()) };
    }

    /// Gives the registration back ([`HoldTicket::give_back`]) and drops the ticket.
    #[inline(always)]
    pub(crate) fn unregister(mut self) -> Claim {
        let claim = self.give_back();
        // Dead now: its drop would only check that again.
        std::mem::forget(self);
        claim
    }

    /// Changes how many permits the registered hold has (`split` / `merge`). `false` if the
    /// owner's exit already claimed it. `primitive` is the hold's primitive, needed when
    /// the change is made outside the owner's context and the hold moves to the shared
    /// slab.
    pub(crate) fn set_permits(
        &mut self,
        permits: usize,
        primitive: impl FnOnce() -> Arc<dyn Abandon>,
    ) -> bool {
        if !self.is_live() {
            return false;
        }
        let record = self.record();
        let key = self.slot & SLOT_KEY;
        if self.slot & SHARED_SLOT != 0 {
            return record
                .with_body(|body| {
                    body.ok()?.shared.lock().holds.get_mut(key).map(|entry| entry.permits = permits)
                })
                .is_some();
        }
        if record.is_current() {
            // SAFETY: in the owner's context; the closure only writes a count.
            return unsafe { record.with_local(|local| local.holds[key].permits = permits) }.is_some();
        }
        // Elsewhere: move the hold to the shared slab, where this context may change it.
        // Where it was taken is in the owner's local slab, out of reach from here. The
        // clone is made (and, if the owner exited, dropped) outside the stripe lock.
        let mut entry = Some(HoldEntry { primitive: primitive(), permits, moves: self.moves(), site: None });
        let moved = record.with_body(|body| {
            let body = body.ok()?;
            let mut shared = body.shared.lock();
            shared.released_local.push(key);
            body.released_elsewhere.store(true, Relaxed);
            Some(shared.holds.insert(entry.take().expect("moved once")))
        });
        drop(entry);
        match moved {
            Some(moved) => {
                self.slot = moved | SHARED_SLOT | (self.slot & MOVES);
                true
            }
            None => false,
        }
    }

    /// Whether this is an owned hold's ticket that its owner's exit claimed, so orphaned
    /// (the record has exited; a live moving ticket is never abandoned). Then
    /// [`HoldTicket::set_permits`] fails, and the hold is the caller's still.
    pub(crate) fn is_orphaned(&self) -> bool {
        self.is_live() && self.moves() && self.record().with_body(|body| body.is_err())
    }

    /// A ticket for a piece split off this orphaned hold ([`HoldTicket::is_orphaned`]):
    /// an orphan of the same exited owner, with a tag of its own, which gives back its
    /// own count of the record (taken here) and says `Orphaned` when given back, as the
    /// exit's claim of a moving hold does.
    pub(crate) fn orphan_piece(&self) -> HoldTicket {
        debug_assert!(self.is_orphaned());
        let key = PIECE_KEYS | (NEXT_PIECE.fetch_add(1, Relaxed) & (PIECE_KEYS - 1));
        // SAFETY: this live ticket of an exited record holds a strong count of it (the
        // exit took one for it), so the record is alive; the count taken here is the new
        // ticket's, given back once by its `give_back` (`return_exit_count`): a shared
        // slot of an exited record always finds the hold claimed.
        unsafe { Arc::increment_strong_count(self.owner.as_ptr().cast_const()) };
        HoldTicket { owner: self.owner, slot: key | SHARED_SLOT | MOVES }
    }

    /// Registers another hold, on the same primitive, to the same owner, of the same kind.
    pub(crate) fn register_sibling(&self, permits: usize, primitive: Arc<dyn Abandon>) -> Option<HoldTicket> {
        self.register_sibling_as(permits, primitive, self.moves())
    }

    /// Registers another hold, on the same primitive, to the same owner; `moves` as given.
    pub(crate) fn register_sibling_as(
        &self,
        permits: usize,
        primitive: Arc<dyn Abandon>,
        moves: bool,
    ) -> Option<HoldTicket> {
        if !self.is_live() {
            return None;
        }
        self.record().register(primitive, permits, moves, self.site()).ok()
    }
}

impl Drop for HoldTicket {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl fmt::Debug for HoldTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner_id() {
            Some(owner) => write!(f, "HoldTicket({owner})"),
            None => f.write_str("HoldTicket(given back)"),
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// The tracked task being polled on this thread, if any. Set by `Tracked::poll` for
    /// the length of one poll, from an `Arc` that the `Tracked` keeps alive that long.
    static CURRENT_TASK: Cell<*const OwnerInner> = const { Cell::new(std::ptr::null()) };
    /// This thread's own owner record while it exists (see `THREAD_OWNER`), for the
    /// cheap "is this the owner's thread?" check.
    static THREAD_RECORD: Cell<*const OwnerInner> = const { Cell::new(std::ptr::null()) };
}
#[cfg(loom)]
loom::thread_local! {
    static CURRENT_TASK: Cell<*const OwnerInner> = Cell::new(std::ptr::null());
    static THREAD_RECORD: Cell<*const OwnerInner> = Cell::new(std::ptr::null());
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
    previous: *const OwnerInner,
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

#[inline(always)]
fn current_task_ptr() -> *const OwnerInner {
    CURRENT_TASK.try_with(Cell::get).unwrap_or(std::ptr::null())
}

/// The record whose context the code running now is in: the innermost tracked task
/// being polled on this thread, else this thread's record if it has one (else null).
#[inline(always)]
fn current_context_ptr() -> *const OwnerInner {
    let task = current_task_ptr();
    if task.is_null() { THREAD_RECORD.try_with(Cell::get).unwrap_or(std::ptr::null()) } else { task }
}

/// Runs `f` on the record of the owner an acquire from `caller` belongs to, if it has
/// one. `f` runs in that owner's context.
fn with_owner<R>(caller: Caller, f: impl FnOnce(RecordRef<'_>) -> R) -> Option<R> {
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
pub(crate) fn holds_of_current(caller: Caller) -> Vec<crate::diagnostics::Held> {
    use crate::diagnostics::Held;
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

/// The record of a live owner with this id: the owner whose context the code running
/// now is in, or a published one ([`OwnerInner::publish`]). `None` for an owner that
/// has exited, an id that names no owner (anonymous borrowers, runtime task ids), or an
/// id that was never given out.
fn live_record(id: OwnerId) -> Option<Arc<OwnerInner>> {
    let here = current_context_ptr();
    if !here.is_null() {
        // SAFETY: a non-null context pointer comes from `Arc::as_ptr` of a record kept
        // alive by its `Tracked` or its thread-local while the code running now is in
        // its context, which lasts through this call.
        let record = unsafe { RecordRef::from_raw(here) };
        // SAFETY: its context, as above.
        if unsafe { record.id_here() } == id {
            return Some(record.to_arc());
        }
    }
    let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    registry.as_ref()?.get(&id.0)?.upgrade()
}

/// Registers a hold of `permits` as certainly owned by the live owner `id` (a hand-over,
/// or a token borrowed on its behalf). `Err` if no such owner is alive.
pub(crate) fn register_to(
    id: OwnerId,
    primitive: Arc<dyn Abandon>,
    permits: usize,
    site: Site,
) -> Result<HoldTicket, OwnerGone> {
    let record = live_record(id).ok_or(OwnerGone(id))?;
    RecordRef::of(&record).register(primitive, permits, false, site).map_err(|_| OwnerGone(id))
}

/// What [`hand_over`] did with a hold's registration.
pub(crate) enum HandedOver {
    /// Registered to the target now.
    To(HoldTicket),
    /// The target is not a live owner: the hold's registration is as it was (the same
    /// owner, a dead ticket if that owner exited meanwhile and so abandoned it, or none).
    TargetGone(Option<HoldTicket>),
    /// The previous owner's exit had already abandoned the hold: its dead ticket.
    Abandoned(HoldTicket),
}

/// Re-registers a hold of `permits` (registered with `previous`, or anonymous) to the
/// live owner `target`, as certainly owned.
///
/// The hold is never registered to two owners at once: two exits could then both
/// abandon the same permits (a double reclaim). So the old registration is given back
/// first, then the new one made. An exit of the old owner in between finds nothing of
/// the hold (linearized after the hand-over); an exit of the target before it is
/// registered fails the hand-over, and the hold goes back to its old owner, or, if that
/// owner exited in between too, is abandoned here in its name, exactly once.
pub(crate) fn hand_over(
    previous: Option<HoldTicket>,
    target: OwnerId,
    permits: usize,
    primitive: &dyn Fn() -> Arc<dyn Abandon>,
    fallback_site: Site,
) -> HandedOver {
    if previous.as_ref().is_some_and(|ticket| !ticket.is_live()) {
        return HandedOver::Abandoned(previous.expect("just matched"));
    }
    let Some(target_record) = live_record(target) else { return HandedOver::TargetGone(previous) };
    // The old owner, kept alive past the give-back in case the hold must go back to it.
    let mut old = None;
    let site = previous.as_ref().and_then(HoldTicket::site).or(fallback_site);
    if let Some(mut ticket) = previous {
        let (record, moves, tag) = (ticket.record().to_arc(), ticket.moves(), ticket.orphan_tag());
        match ticket.give_back() {
            Claim::Ours => old = Some((record, moves)),
            // Anonymous from now on (its acquirer is gone): nothing to go back to.
            Claim::Orphaned => primitive().adopt_orphan(tag),
            Claim::Abandoned => return HandedOver::Abandoned(ticket),
        }
    }
    if let Ok(ticket) = RecordRef::of(&target_record).register(primitive(), permits, false, site) {
        return HandedOver::To(ticket);
    }
    let Some((old, moves)) = old else { return HandedOver::TargetGone(None) };
    match RecordRef::of(&old).register(primitive(), permits, moves, site) {
        Ok(ticket) => HandedOver::TargetGone(Some(ticket)),
        // Owned (moving) holds are orphaned, not abandoned, by an exit: it stays ours,
        // anonymous.
        Err(_) if moves => HandedOver::TargetGone(None),
        Err(reason) => {
            primitive().abandon(&old.abandoner(), reason, permits, site);
            HandedOver::TargetGone(Some(HoldTicket::dead()))
        }
    }
}

/// Whether `id` names a live owner (see [`live_record`]).
pub(crate) fn is_live_owner(id: OwnerId) -> bool {
    live_record(id).is_some_and(|record| !record.has_exited())
}

/// No live owner has this id (see [`live_record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OwnerGone(pub(crate) OwnerId);

/// Whether `id` names an owner that exits: a tracked task or a thread, as opposed to an
/// anonymous borrower or a runtime task id.
pub(crate) fn can_exit(id: OwnerId) -> bool {
    id.0 & (RUNTIME_BIT | ANONYMOUS_BIT) == 0 || id.is_thread()
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

    struct CountAbandons(std::sync::Mutex<Vec<(OwnerId, AbandonReason, usize)>>, AtomicU64);
    impl Abandon for CountAbandons {
        fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, _: Site) {
            self.0.lock().unwrap().push((owner.id, reason, permits));
        }
        fn orphan(&self, _: &Abandoner, _: usize, _: Site, _: OrphanTag) {
            self.1.fetch_add(1, Relaxed);
        }
        fn adopt_orphan(&self, _: OrphanTag) {
            self.1.fetch_sub(1, Relaxed);
        }
    }
    impl CountAbandons {
        fn new() -> Arc<Self> {
            Arc::new(CountAbandons(std::sync::Mutex::new(Vec::new()), AtomicU64::new(0)))
        }
        fn orphans(&self) -> u64 {
            self.1.load(Relaxed)
        }
        fn seen(&self) -> Vec<(OwnerId, AbandonReason, usize)> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Registers `permits` to `owner` from inside its context, as an acquire in its poll.
    fn register_in(owner: &Arc<OwnerInner>, sink: &Arc<CountAbandons>, permits: usize) -> Option<HoldTicket> {
        let _scope = CurrentTaskScope::enter(owner);
        let (id, ticket) = register_hold(Caller::Async, permits, sink, false, None).unwrap();
        assert_eq!(id, owner.id());
        ticket
    }

    #[test]
    fn exit_abandons_registered_holds_once_and_release_wins_before_it() {
        let owner = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let released = register_in(&owner, &sink, 1).unwrap();
        let leaked = register_in(&owner, &sink, 3).unwrap();
        {
            let _scope = CurrentTaskScope::enter(&owner);
            assert_eq!(owner.registered_holds(), 2);
            assert_eq!(
                released.unregister(),
                Claim::Ours,
                "released in the owner's context, before the exit"
            );
            assert_eq!(owner.registered_holds(), 1);
        }
        owner.exit(AbandonReason::Cancelled);
        owner.exit(AbandonReason::Exited); // ignored: already exited
        assert_eq!(sink.seen(), vec![(owner.id(), AbandonReason::Cancelled, 3)]);
        // The exit took a count of the record for the leaked hold's ticket...
        assert_eq!(Arc::strong_count(&owner), 2);
        // ...which claimed the hold: releasing it now must not release it twice.
        assert_eq!(leaked.unregister(), Claim::Abandoned);
        assert_eq!(Arc::strong_count(&owner), 1, "the ticket gave the exit's count back");
        // Registering to an exited owner fails: the hold stays anonymous.
        assert!(register_in(&owner, &sink, 1).is_none());
    }

    #[test]
    fn an_exit_frees_the_body_and_a_leaked_ticket_keeps_only_the_head() {
        // The head, with `Arc`'s two counts, is what a leaked hold costs: 24 bytes.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<OwnerInner>(), 8);
        let owner = OwnerInner::new_task();
        let id = owner.id();
        let sink = CountAbandons::new();
        let leaked = register_in(&owner, &sink, 2).unwrap();
        owner.exit(AbandonReason::Panicked);
        assert_eq!(read_word(owner.body.load(Relaxed)).err(), Some(AbandonReason::Panicked));
        assert!(owner.has_exited());
        assert_eq!(Arc::strong_count(&sink), 1, "the body's entries went with it");
        // What a leaked ticket may still ask, the head answers: who, and why it is gone.
        assert_eq!(leaked.owner_id(), Some(owner.id()));
        assert_eq!(leaked.answering_owner(), None, "nobody answers for it any more");
        assert_eq!(leaked.site(), None);
        let again = RecordRef::of(&owner).register(sink.clone(), 1, false, None);
        assert_eq!(again.err(), Some(AbandonReason::Panicked), "the reason outlives the body");
        std::mem::forget(leaked);
        assert_eq!(Arc::strong_count(&owner), 2, "the leaked ticket's count keeps the head");
        assert_eq!(owner.id(), id, "the id outlives the body");
        // A thread's id too, with every exit reason.
        for reason in [AbandonReason::Exited, AbandonReason::Cancelled, AbandonReason::Panicked] {
            let thread = Arc::new(OwnerInner::new(OwnerId::next_thread(), None));
            let id = thread.id();
            thread.exit(reason);
            assert_eq!((thread.id(), read_word(thread.body.load(Relaxed)).err()), (id, Some(reason)));
            assert!(thread.id().is_thread());
        }
    }

    #[test]
    fn a_record_made_after_an_exit_on_the_same_thread_reuses_its_body() {
        let first = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let _released = register_in(&first, &sink, 1).unwrap().unregister();
        let body = first.body.load(Relaxed);
        first.exit(AbandonReason::Exited);
        assert!(spare_body::is_kept(body), "the exit kept its body as this thread's spare");
        let second = OwnerInner::new_task();
        assert_eq!(second.body.load(Relaxed), body, "the second record took the spare");
        assert!(!spare_body::is_kept(body));
        // SAFETY: nothing but this thread reaches `second`: it is its only context.
        let kept = unsafe { second.with_local(|local| (local.holds.len(), local.holds.capacity())) };
        assert!(matches!(kept, Some((0, 1..))), "with the first one's empty slab: {kept:?}");
        // SAFETY: nothing but this thread reaches `second`: it is its only context.
        assert_eq!(unsafe { second.body() }.map(OwnerBody::live_holds).ok(), Some(0), "as new");
        second.exit(AbandonReason::Exited);
    }

    #[test]
    fn a_spare_body_lets_a_large_slab_go() {
        let first = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let many: Vec<_> = (0..40).map(|_| register_in(&first, &sink, 1).unwrap()).collect();
        {
            let _scope = CurrentTaskScope::enter(&first);
            many.into_iter().for_each(|ticket| assert_eq!(ticket.unregister(), Claim::Ours));
        }
        first.exit(AbandonReason::Exited);
        let second = OwnerInner::new_task();
        // SAFETY: nothing but this thread reaches `second`: it is its only context.
        let capacity = unsafe { second.with_local(|local| local.holds.capacity()) };
        assert_eq!(capacity, Some(0), "a 40-entry slab is not kept for every later task");
        second.exit(AbandonReason::Exited);
    }

    /// A live record (a thread's lives as long as the thread) lets go of the room a
    /// burst of holds grew once they are released, and keeps its spare entry.
    #[test]
    fn a_live_record_lets_a_burst_of_holds_room_go() {
        let owner = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let burst: Vec<_> =
            (0..4 * KEPT_LIVE_SLAB_CAPACITY).map(|_| register_in(&owner, &sink, 1).unwrap()).collect();
        let scope = CurrentTaskScope::enter(&owner);
        // SAFETY (both): in the owner's context, the only one that reaches its local holds.
        let capacity = || unsafe { owner.with_local(|local| local.holds.capacity()) }.unwrap();
        assert!(capacity() >= burst.len());
        burst.into_iter().for_each(|ticket| assert_eq!(ticket.unregister(), Claim::Ours));
        assert!(capacity() <= KEPT_LIVE_SLAB_CAPACITY, "kept room for {} holds", capacity());
        let spare = unsafe { owner.with_local(|local| local.spare.map(|key| local.holds[key].permits)) };
        assert_eq!(spare, Some(Some(1)), "the spare entry is kept, in the new slab");
        let again = register_in(&owner, &sink, 1).unwrap();
        assert_eq!(again.unregister(), Claim::Ours);
        drop(scope);
        owner.exit(AbandonReason::Exited);
        assert!(sink.seen().is_empty(), "nothing was abandoned");
    }

    #[test]
    fn a_primitive_released_here_is_reused_without_a_clone_and_let_go_at_exit() {
        let owner = OwnerInner::new_task();
        let (first, second) = (CountAbandons::new(), CountAbandons::new());
        let ticket = register_in(&owner, &first, 1).unwrap();
        assert_eq!(Arc::strong_count(&first), 2, "the entry's clone");
        {
            let _scope = CurrentTaskScope::enter(&owner);
            assert_eq!(ticket.unregister(), Claim::Ours);
        }
        assert_eq!(Arc::strong_count(&first), 2, "kept as the spare");
        let again = register_in(&owner, &first, 1).unwrap();
        assert_eq!(Arc::strong_count(&first), 2, "the spare was reused, not cloned");
        let other = register_in(&owner, &second, 1).unwrap();
        assert_eq!(Arc::strong_count(&second), 2, "another primitive is cloned");
        {
            let _scope = CurrentTaskScope::enter(&owner);
            assert_eq!(again.unregister(), Claim::Ours);
            assert_eq!(other.unregister(), Claim::Ours);
        }
        assert_eq!(Arc::strong_count(&first), 1, "the newer release replaced the spare");
        owner.exit(AbandonReason::Exited);
        assert_eq!(Arc::strong_count(&second), 1, "the exit lets the spare go");
        assert!(first.seen().is_empty() && second.seen().is_empty());
    }

    #[test]
    fn holds_released_elsewhere_are_not_abandoned_and_their_keys_are_recycled() {
        let owner = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let moved = register_in(&owner, &sink, 1).unwrap();
        let kept = register_in(&owner, &sink, 2).unwrap();
        // Released on another thread: through the lock, and the exit must skip it.
        std::thread::spawn(move || assert_eq!(moved.unregister(), Claim::Ours)).join().unwrap();
        let again = register_in(&owner, &sink, 4).unwrap(); // sweeps the released key
        {
            let _scope = CurrentTaskScope::enter(&owner);
            assert_eq!(owner.registered_holds(), 2);
            assert_eq!(kept.unregister(), Claim::Ours);
        }
        owner.exit(AbandonReason::Exited);
        assert_eq!(sink.seen(), vec![(owner.id(), AbandonReason::Exited, 4)]);
        drop(again); // dropping an abandoned ticket gives the exit's count back too
        assert_eq!(Arc::strong_count(&owner), 1);
    }

    #[test]
    fn a_release_elsewhere_racing_the_exit_is_decided_once() {
        let owner = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let ticket = register_in(&owner, &sink, 1).unwrap();
        let released = std::thread::scope(|scope| {
            let release = scope.spawn(move || ticket.unregister() == Claim::Ours);
            owner.exit(AbandonReason::Exited);
            release.join().unwrap()
        });
        let abandoned = sink.seen().len();
        assert_eq!(usize::from(released) + abandoned, 1, "released or abandoned, exactly once");
        assert_eq!(Arc::strong_count(&owner), 1, "no count is lost or leaked either way");
    }

    #[test]
    fn permits_changed_elsewhere_move_to_the_shared_slab() {
        let owner = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let mut ticket = register_in(&owner, &sink, 5).unwrap();
        let primitive = || sink.clone() as Arc<dyn Abandon>;
        let sibling = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    assert!(ticket.set_permits(3, primitive));
                    ticket.register_sibling(2, primitive()).unwrap()
                })
                .join()
                .unwrap()
        });
        {
            let _scope = CurrentTaskScope::enter(&owner);
            assert_eq!(owner.registered_holds(), 2);
        }
        owner.exit(AbandonReason::Panicked);
        let mut seen = sink.seen();
        seen.sort_by_key(|(_, _, permits)| *permits);
        assert_eq!(
            seen,
            vec![(owner.id(), AbandonReason::Panicked, 2), (owner.id(), AbandonReason::Panicked, 3)]
        );
        assert_eq!(ticket.unregister(), Claim::Abandoned);
        assert_eq!(sibling.unregister(), Claim::Abandoned);
        assert_eq!(Arc::strong_count(&owner), 1);
    }

    #[test]
    fn a_thread_owner_registers_on_its_own_thread_and_exits_with_it() {
        let sink = CountAbandons::new();
        let (id, ticket) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let (id, ticket) = register_hold(Caller::Blocking, 1, &sink, false, None).unwrap();
                    assert!(id.is_thread());
                    (id, ticket.unwrap())
                })
                .join()
                .unwrap()
        });
        // The thread ended holding it: abandoned, and the ticket outlives the record's
        // thread-local but not the record.
        assert_eq!(sink.seen(), vec![(id, AbandonReason::Exited, 1)]);
        assert_eq!(ticket.owner_id(), Some(id));
        assert_eq!(ticket.unregister(), Claim::Abandoned);
    }

    #[test]
    fn an_exit_orphans_moving_holds_and_a_live_owner_is_found_by_its_published_id() {
        let owner = OwnerInner::new_task();
        let sink = CountAbandons::new();
        let (moving, certain) = {
            let _scope = CurrentTaskScope::enter(&owner);
            let (_, moving) = register_hold(Caller::Async, 2, &sink, true, None).unwrap();
            let (_, certain) = register_hold(Caller::Async, 1, &sink, false, None).unwrap();
            (moving.unwrap(), certain.unwrap())
        };
        assert!(moving.moves() && !certain.moves());
        assert!(!is_live_owner(owner.id()), "not published: not found by id");
        owner.publish();
        assert!(is_live_owner(owner.id()));
        let handed = register_to(owner.id(), sink.clone(), 4, None).unwrap();
        owner.exit(AbandonReason::Exited);
        assert!(!is_live_owner(owner.id()), "the exit unpublishes");
        assert_eq!(register_to(owner.id(), sink.clone(), 1, None).err(), Some(OwnerGone(owner.id())));
        let mut seen = sink.seen();
        seen.sort_by_key(|(_, _, permits)| *permits);
        assert_eq!(seen, [(owner.id(), AbandonReason::Exited, 1), (owner.id(), AbandonReason::Exited, 4)]);
        assert_eq!(sink.orphans(), 1, "the moving hold is orphaned, not abandoned");
        assert_eq!(moving.unregister(), Claim::Orphaned);
        assert_eq!(certain.unregister(), Claim::Abandoned);
        assert_eq!(handed.unregister(), Claim::Abandoned);
        assert_eq!(Arc::strong_count(&owner), 1, "every ticket gave the exit's count back");
    }

    #[test]
    fn a_hand_over_moves_the_registration_and_a_gone_target_leaves_it() {
        let (old, new) = (OwnerInner::new_task(), OwnerInner::new_task());
        new.publish();
        let sink = CountAbandons::new();
        let primitive = || sink.clone() as Arc<dyn Abandon>;
        let ticket = register_in(&old, &sink, 2).unwrap();
        let HandedOver::To(ticket) = hand_over(Some(ticket), new.id(), 2, &primitive, None) else {
            panic!("a live, published target takes it")
        };
        assert_eq!(ticket.owner_id(), Some(new.id()));
        old.exit(AbandonReason::Exited);
        assert!(sink.seen().is_empty(), "the old owner answers for nothing any more");
        new.exit(AbandonReason::Cancelled);
        assert_eq!(sink.seen(), [(new.id(), AbandonReason::Cancelled, 2)]);
        // The new owner is gone: a hand-over to it leaves the hold as it was.
        let other = OwnerInner::new_task();
        let kept = register_in(&other, &sink, 1).unwrap();
        let HandedOver::TargetGone(Some(kept)) = hand_over(Some(kept), new.id(), 1, &primitive, None) else {
            panic!("an exited target takes nothing")
        };
        assert_eq!(kept.owner_id(), Some(other.id()));
        assert!(matches!(hand_over(None, new.id(), 1, &primitive, None), HandedOver::TargetGone(None)));
        // A dead ticket (an abandoned hold) is never handed over, and never dereferenced.
        assert_eq!(ticket.unregister(), Claim::Abandoned);
        let HandedOver::Abandoned(dead) =
            hand_over(Some(HoldTicket::dead()), other.id(), 1, &primitive, None)
        else {
            panic!("an abandoned hold stays abandoned")
        };
        assert_eq!(dead.owner_id(), None);
        {
            let _scope = CurrentTaskScope::enter(&other);
            assert_eq!(kept.unregister(), Claim::Ours);
        }
        assert_eq!((Arc::strong_count(&old), Arc::strong_count(&new)), (1, 1));
    }
}
