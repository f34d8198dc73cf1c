//! An owner's record: its head (one word, all that outlives the exit), its body (the
//! slabs), the stripes that keep a body alive for other contexts, the exit that claims
//! every hold still registered, and a nested scope's completion.

use std::cell::Cell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::Ordering::Relaxed;

use slab::Slab;

use crate::error::AbandonReason;
use crate::loom::{AtomicBool, AtomicPtr, Mutex, UnsafeCell};

use super::abandon::{Abandon, Abandoner, OrphanTag};
use super::slabs::{HoldEntry, LocalHolds, SHARED_SLOT, SharedHolds};
use crate::id::{OwnerId, THREAD_BIT};

/// Published owners (see [`OwnerInner::publish`]) by raw id, for hand-overs by id. Not
/// part of any race the loom models check: what decides a hand-over racing an exit is
/// the record's own lock.
pub(super) static REGISTRY: std::sync::Mutex<Option<HashMap<u64, Weak<OwnerInner>>>> =
    std::sync::Mutex::new(None);

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
    pub(super) body: AtomicPtr<OwnerBody>,
    /// Where a pointer is too narrow to hold an exited owner's id too, the id.
    #[cfg(not(target_pointer_width = "64"))]
    pub(super) id: OwnerId,
    #[cfg(loom)]
    pub(super) stripe: Stripe,
}

/// What an owner's record holds while the owner lives (see [`OwnerInner`]).
pub(super) struct OwnerBody {
    pub(super) id: OwnerId,
    pub(super) name: Option<Arc<str>>,
    /// Touched only in the owner's context.
    pub(super) local: UnsafeCell<LocalHolds>,
    pub(super) shared: Mutex<SharedHolds>,
    /// A hint that `shared.released_local` has keys: checked with a plain load.
    pub(super) released_elsewhere: AtomicBool,
    /// Whether the id was given out ([`OwnerInner::publish`]), so that a hand-over can
    /// find the record by id; the exit unpublishes it.
    pub(super) published: std::sync::atomic::AtomicBool,
    /// The owner completed inside an enclosing scope and passed its holds to it
    /// ([`OwnerInner::complete`]): never published again, so nothing more is handed to it.
    pub(super) forwarded: std::sync::atomic::AtomicBool,
}

// SAFETY: `local` is only reached in the owner's context (see `OwnerInner`), which one
// thread at a time is in; everything else is behind `shared`'s lock or atomic.
unsafe impl Sync for OwnerBody {}

impl OwnerBody {
    pub(super) fn new(id: OwnerId, name: Option<Arc<str>>) -> Self {
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
    pub(super) unsafe fn with_local<R>(&self, f: impl FnOnce(&mut LocalHolds) -> R) -> R {
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
    pub(super) fn abandoner(&self) -> Abandoner {
        Abandoner { id: self.id, name: self.name.clone() }
    }

    /// How many holds are registered now. In the owner's context only (or, for a
    /// forwarded scope, its enclosing owner's: see [`OwnerInner::complete`]).
    pub(super) fn live_holds(&self) -> usize {
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
pub(super) fn exited_word(reason: AbandonReason, id: OwnerId) -> *mut OwnerBody {
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
pub(super) fn exited_id(word: *mut OwnerBody) -> OwnerId {
    let number = (word.addr() >> 4) as u64;
    if word.addr() & 1 << 3 != 0 { OwnerId(number | THREAD_BIT) } else { OwnerId(number) }
}

/// The body a record's `body` word points at, or the reason its owner exited.
#[inline]
pub(super) fn read_word(word: *mut OwnerBody) -> Result<NonNull<OwnerBody>, AbandonReason> {
    if word.addr() & 1 == 0 {
        // SAFETY: an even word is the pointer of the body's `Box`, never null.
        return Ok(unsafe { NonNull::new_unchecked(word) });
    }
    Err(exit_reason(word))
}

/// The reason an exited record's word holds (see [`exited_word`]).
#[cold]
pub(super) fn exit_reason(word: *mut OwnerBody) -> AbandonReason {
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
pub(super) struct Stripe(Mutex<()>);

#[cfg(not(loom))]
pub(super) const STRIPES: usize = 64;
#[cfg(not(loom))]
pub(super) static STRIPE_LOCKS: [Stripe; STRIPES] = [const { Stripe(Mutex::new(())) }; STRIPES];

/// The stripe that guards `record`'s body.
#[cfg(not(loom))]
pub(super) fn stripe_of(record: &OwnerInner) -> &'static Mutex<()> {
    // Records are 8-aligned and at least 24 bytes apart: drop the low bits they share.
    let address = std::ptr::from_ref(record).addr();
    &STRIPE_LOCKS[(address >> 4) % STRIPES].0
}

/// Under loom, each record's own lock in its head: loom's statics cannot be reached from
/// the thread-local destructors where threads exit. Same protocol, a lock outside the body.
#[cfg(loom)]
pub(super) fn stripe_of(record: &OwnerInner) -> &Mutex<()> {
    &record.stripe.0
}

impl OwnerInner {
    pub(super) fn new(id: OwnerId, name: Option<Arc<str>>) -> Self {
        crate::hooks::record_made();
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
    pub(super) unsafe fn body(&self) -> Result<&OwnerBody, AbandonReason> {
        // SAFETY: a live word points at the body, which the caller's context keeps alive
        // (see above); nothing reaches it mutably but through its cells and locks.
        read_word(self.body.load(Relaxed)).map(|body| unsafe { body.as_ref() })
    }

    /// Runs `f` on the body (or the exit's reason) from any context: under the record's
    /// stripe lock, so that the exit cannot free the body meanwhile. `f` must not take
    /// another record's stripe or call out of this module.
    pub(super) fn with_body<R>(&self, f: impl FnOnce(Result<&OwnerBody, AbandonReason>) -> R) -> R {
        let _stripe = stripe_of(self).lock();
        // SAFETY: under the record's stripe lock, held until `f` returns.
        f(unsafe { self.body() })
    }

    /// Runs `f` on the local holds in the owner's context; `None` once it exited.
    ///
    /// # Safety
    /// As [`OwnerBody::with_local`].
    #[inline]
    pub(super) unsafe fn with_local<R>(&self, f: impl FnOnce(&mut LocalHolds) -> R) -> Option<R> {
        // SAFETY: in the owner's context (the caller's contract), for the length of `f`.
        let body = unsafe { self.body() }.ok()?;
        // SAFETY: the caller's contract.
        Some(unsafe { body.with_local(f) })
    }

    /// Makes the record findable by its id ([`live_record`](super::handover::live_record)) until it exits: done when
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

    pub(super) fn has_exited(&self) -> bool {
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
    pub(super) unsafe fn id_here(&self) -> OwnerId {
        // SAFETY: the caller's contract.
        match unsafe { self.body() } {
            Ok(body) => body.id,
            Err(_) => self.exited_id(),
        }
    }

    /// The id an exited record keeps.
    pub(super) fn exited_id(&self) -> OwnerId {
        #[cfg(target_pointer_width = "64")]
        return exited_id(self.body.load(Relaxed));
        #[cfg(not(target_pointer_width = "64"))]
        return self.id;
    }

    /// Who to name: the owner, with its thread's name while its record still has it.
    pub(super) fn abandoner(&self) -> Abandoner {
        self.with_body(|body| match body {
            Ok(body) => body.abandoner(),
            Err(_) => Abandoner { id: self.exited_id(), name: None },
        })
    }

    /// Whether the code running now is in this owner's context.
    #[inline(always)]
    pub(super) fn is_current(&self) -> bool {
        let here = current_context_ptr();
        std::ptr::eq(here, self)
    }

    /// Marks the owner exited and abandons every hold still registered to it.
    /// Idempotent: only the first exit counts.
    ///
    /// Each abandoned hold's ticket keeps a strong count of the record's head from here
    /// on (see [`HoldTicket`](super::ticket::HoldTicket)), so a guard that outlives its owner can still ask it what
    /// happened; the body is freed here.
    ///
    /// Call it only in the owner's context: from its `Tracked`'s poll or drop, or from
    /// its thread's thread-local destructor.
    pub(crate) fn exit(self: &Arc<Self>, reason: AbandonReason) {
        self.exit_as(reason, None);
    }

    /// [`OwnerInner::exit`], naming `abandoner` (else this owner) in what breaks.
    pub(super) fn exit_as(self: &Arc<Self>, reason: AbandonReason, abandoner: Option<&Abandoner>) {
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
            crate::wake::run_all(abandoned, |(tag, hold)| {
                if hold.moves {
                    hold.primitive.orphan(abandoner, hold.permits, hold.site, tag);
                } else {
                    hold.primitive.abandon_hold(abandoner, reason, hold.permits, hold.site, Some(tag));
                }
            });
        }
        // Last: an entry may hold a primitive's last reference, whose drop is best left
        // until every abandoned hold is settled.
        drop(released);
    }

    /// How many holds are registered to the owner now. In the owner's context only (or,
    /// for a forwarded scope, its enclosing owner's: see [`OwnerInner::complete`]).
    pub(super) fn live_holds(&self) -> usize {
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
    pub(super) fn forward_holders(&self, from: OwnerId, to: OwnerId) {
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
}

/// A spare body per thread: the body of the last record that exited on it, for the next
/// record made there, so that a task spawned and finished on one thread (the common case)
/// allocates only its record's head.
pub(super) mod spare_body {
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
    pub(in crate::owner) fn is_kept(body: *mut OwnerBody) -> bool {
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
pub(super) fn unpublish(id: OwnerId) {
    let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(map) = registry.as_mut() {
        map.remove(&id.0);
    }
}

impl Drop for OwnerInner {
    fn drop(&mut self) {
        crate::hooks::record_dropped();
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

/// Drops the local holds released elsewhere from `body`'s slab, so their keys are reused.
/// In the owner's context.
#[cold]
#[inline(never)]
pub(super) fn sweep_released_elsewhere(body: &OwnerBody) {
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
pub(super) struct RecordRef<'a> {
    pub(super) ptr: NonNull<OwnerInner>,
    pub(super) life: PhantomData<&'a OwnerInner>,
}

impl<'a> RecordRef<'a> {
    pub(super) fn of(record: &'a Arc<OwnerInner>) -> Self {
        // SAFETY: `Arc::as_ptr` is never null, and the record lives as long as the `Arc`.
        unsafe { Self::from_raw(Arc::as_ptr(record)) }
    }

    /// # Safety
    /// `ptr` comes from `Arc::as_ptr` of a record that stays alive for `'a`.
    pub(super) unsafe fn from_raw(ptr: *const OwnerInner) -> Self {
        // SAFETY: the caller passes a non-null pointer from `Arc::as_ptr`.
        RecordRef { ptr: unsafe { NonNull::new_unchecked(ptr.cast_mut()) }, life: PhantomData }
    }

    /// A strong count of the record, for what must keep or downgrade it (a hand-over's
    /// target, the lookup table's weak reference).
    pub(super) fn to_arc(self) -> Arc<OwnerInner> {
        let ptr = self.ptr.as_ptr().cast_const();
        // SAFETY: a `RecordRef` holds a pointer from `Arc::as_ptr` of a record alive for
        // `'a` (see `from_raw`), so a strong count may be taken through it and owned.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
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

#[cfg(not(loom))]
std::thread_local! {
    /// The tracked task being polled on this thread, if any. Set by `Tracked::poll` for
    /// the length of one poll, from an `Arc` that the `Tracked` keeps alive that long.
    pub(super) static CURRENT_TASK: Cell<*const OwnerInner> = const { Cell::new(std::ptr::null()) };
    /// This thread's own owner record while it exists (see `THREAD_OWNER`), for the
    /// cheap "is this the owner's thread?" check.
    pub(super) static THREAD_RECORD: Cell<*const OwnerInner> = const { Cell::new(std::ptr::null()) };
}
#[cfg(loom)]
loom::thread_local! {
    pub(super) static CURRENT_TASK: Cell<*const OwnerInner> = Cell::new(std::ptr::null());
    pub(super) static THREAD_RECORD: Cell<*const OwnerInner> = Cell::new(std::ptr::null());
}

#[inline(always)]
pub(super) fn current_task_ptr() -> *const OwnerInner {
    CURRENT_TASK.try_with(Cell::get).unwrap_or(std::ptr::null())
}

/// The record whose context the code running now is in: the innermost tracked task
/// being polled on this thread, else this thread's record if it has one (else null).
#[inline(always)]
pub(super) fn current_context_ptr() -> *const OwnerInner {
    let task = current_task_ptr();
    if task.is_null() { THREAD_RECORD.try_with(Cell::get).unwrap_or(std::ptr::null()) } else { task }
}
