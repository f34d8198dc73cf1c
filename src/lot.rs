//! The waiter queue under every primitive (Trio's ParkingLot).
//!
//! Waiters live in slab slots, linked in FIFO order by slot key, so parking, granting
//! the head and leaving from the middle are all O(1) and allocation-free once the slab
//! has grown. When the queue grants a waiter (or fails it: close, break), it takes the
//! waiter out and writes the outcome into a [`Settlement`], a word inside the waiting
//! future itself. The woken future reads that word without taking any lock, so a
//! hand-off costs the releaser's lock and nothing more on the waiter's side; and a
//! grant is never lost, because the word belongs to the future until it is dropped, and
//! a dropped future with a grant passes it on. The queue itself is not locked; its owner
//! (the counted core) keeps it under one lock together with the permit bookkeeping.
//! Wakers are collected in a [`WakeList`] and woken after that lock is released (tokio
//! #5429).
//!
//! Blocking callers do not get a second wait loop: [`block_on`](crate::block::block_on) polls the same future
//! with a waker that unparks the thread.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::Duration;

use slab::Slab;

use crate::clock::Stamp;
use crate::id::{OwnerId, Site};
use crate::loom::AtomicUsize;
use crate::wake::WakeList;

/// A slot key as the queue links it: 32 bits, so that a slot fits in one cache line
/// (64 bytes; the hand-off touches the head slot on every grant).
type Link = u32;
const NIL: Link = Link::MAX;

/// The link of a slab key. More than 4 billion queued waiters (each a future of at least
/// 64 bytes: 256 GiB) is out of reach; it panics rather than corrupt the queue.
fn link(key: usize) -> Link {
    Link::try_from(key).ok().filter(|&link| link != NIL).expect("fewer than 2^32 - 1 queued waiters")
}

/// A waiter's wanted permits as a slot keeps them (see [`Slot::wants`]).
fn wants(permits: usize) -> u32 {
    u32::try_from(permits).expect("a waiter wants at most u32::MAX permits")
}

/// Room for this many waiters (4 KiB of slots) is kept when a queue empties; a larger
/// slab, grown by a burst of waiters, is freed then, so a primitive does not keep the
/// memory of its longest queue for ever (tokio's intrusive list keeps none). A queue
/// that keeps more waiters than this grows again in doublings, amortized per waiter.
const KEPT_SLOTS: usize = 64;

/// How many waiters from the head one long-wait check looks at.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
const LONG_WAIT_SCAN: usize = 32;

/// What became of a waiter, as its [`Settlement`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still queued.
    Waiting,
    /// Handed the permits it asked for; they are the waiter's even if it never runs again.
    Granted,
    /// Failed: the primitive closed or broke while it waited.
    Failed,
    /// Moved by a notify from a condition's queue onto its mutex's, at this key there
    /// (a condition waiter only: see `Condition`).
    Requeued(usize),
    /// Taken out of the queue and woken, not granted: the permits were put back for
    /// anyone to take, and the waiter is to try again (eventual fairness: see
    /// [`WaitQueue::wake_front`]).
    Woken,
}

const WAITING: usize = 0;
const GRANTED: usize = 1;
const FAILED: usize = 2;
/// `REQUEUED | key << TAG_BITS`: requeued, waiting at `key` in the mutex's queue.
const REQUEUED: usize = 3;
const TAG_BITS: u32 = 2;
/// Not `REQUEUED | key << TAG_BITS` for any key (those are 3 modulo 4).
const WOKEN: usize = 4;

/// The word a waiting future keeps for the queue to write its outcome into.
///
/// The queue writes it once, under the owner's lock, as the last thing it does with the
/// waiter; the future reads it with no lock (`Acquire` pairs with the queue's
/// `Release`, so everything the granter did before is visible).
///
/// A waiter whose grant a named borrow answers for (a limiter's borrower set) carries a
/// [`GrantClaim`] beside the word, marked as the grant is settled.
pub(crate) struct Settlement {
    word: AtomicUsize,
    claim: Option<Arc<GrantClaim>>,
}

impl Settlement {
    pub(crate) fn new() -> Self {
        Settlement { word: AtomicUsize::new(WAITING), claim: None }
    }

    /// A settlement whose grant `claim` answers for (see [`GrantClaim`]).
    pub(crate) fn claimed_by(claim: Arc<GrantClaim>) -> Self {
        Settlement { word: AtomicUsize::new(WAITING), claim: Some(claim) }
    }

    /// Whether the waiter itself passes on a grant it will not collect (dropped, or
    /// failed after the grant): yes, unless a claim answers for the grant (see
    /// [`GrantClaim::passes_on_grant`]).
    pub(crate) fn passes_on_grant(&self) -> bool {
        self.claim.as_ref().is_none_or(|claim| claim.passes_on_grant())
    }

    /// Back to `Waiting`, to queue again after an [`Outcome::Woken`]. Only while no
    /// queue has a pointer to it.
    pub(crate) fn reset(&self) {
        self.word.store(WAITING, Ordering::Relaxed);
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match self.word.load(Ordering::Acquire) {
            WAITING => Outcome::Waiting,
            GRANTED => Outcome::Granted,
            FAILED => Outcome::Failed,
            WOKEN => Outcome::Woken,
            requeued => Outcome::Requeued(requeued >> TAG_BITS),
        }
    }
}

/// A queued waiter's settlement, inside its pinned future.
struct SettlementPtr(NonNull<Settlement>);

// SAFETY: the pointee is an atomic, written from whichever thread settles the waiter;
// `WaitQueue::park`'s contract keeps it alive while the queue holds the pointer.
unsafe impl Send for SettlementPtr {}
// SAFETY: see above.
unsafe impl Sync for SettlementPtr {}

impl SettlementPtr {
    /// Records that the waiter now waits at `key` in another queue (a requeue). Not its
    /// last touch: the new queue settles it later, through the same pointer.
    fn mark_requeued(&self, key: usize) {
        // SAFETY: as in `settle`: the waiter is still queued (in the new queue, under the
        // same owner's lock that is held now), so its settlement is alive and in place.
        unsafe { self.0.as_ref() }.word.store(REQUEUED | (key << TAG_BITS), Ordering::Release);
    }

    /// Writes the outcome: the queue's last touch of the waiter's memory.
    fn settle(self, outcome: usize) {
        // SAFETY: `park`'s contract: the settlement stays where it is until it reads a
        // settled outcome or its slot is removed. Neither has happened (the slot is
        // being settled now, under the owner's lock), and nothing touches it after this
        // store, which lets the future finish and free it. A claim is marked first, so
        // the grant is its borrower's before the waiter can see it.
        let settlement = unsafe { self.0.as_ref() };
        if outcome == GRANTED {
            if let Some(claim) = &settlement.claim {
                claim.grant();
            }
        }
        settlement.word.store(outcome, Ordering::Release);
    }
}

const CLAIM_WAITING: usize = 0;
const CLAIM_GRANTED: usize = 1;
const CLAIM_TAKEN: usize = 2;
const CLAIM_DROPPED: usize = 3;

/// Who answers for a grant to a named borrow's waiter: the borrow's entry in its
/// limiter's borrower set, which shares this with the waiter's [`Settlement`].
///
/// The queue marks it granted as it settles the waiter, under the lot's lock: from that
/// moment the borrow is its borrower's, listed and releasable on its behalf, before the
/// woken future runs again (as a mutex names its new holder at the hand-off), and the
/// waiter's future no longer passes the grant on if it is dropped: the borrow's entry
/// does, once. Each state changes once: `WAITING -> GRANTED -> TAKEN` (the borrower set
/// took the grant: collected, released on the borrower's behalf, or given back by a
/// dropped acquire), or `WAITING -> DROPPED` (the borrow gave up before any grant: a
/// grant after that is the waiter's own, to pass on as any other).
pub(crate) struct GrantClaim(AtomicUsize);

impl GrantClaim {
    pub(crate) fn new() -> Self {
        GrantClaim(AtomicUsize::new(CLAIM_WAITING))
    }
    /// The queue granted the waiter (under the lot's lock).
    fn grant(&self) {
        let _ = self.0.compare_exchange(CLAIM_WAITING, CLAIM_GRANTED, Ordering::AcqRel, Ordering::Acquire);
    }
    /// Granted and not taken yet: the borrower holds the token, uncollected.
    pub(crate) fn is_granted(&self) -> bool {
        self.0.load(Ordering::Acquire) == CLAIM_GRANTED
    }
    /// Takes a granted, untaken grant: the caller now answers for the permit (to keep
    /// or release). `false` if there is none to take.
    pub(crate) fn take_grant(&self) -> bool {
        self.0.compare_exchange(CLAIM_GRANTED, CLAIM_TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    /// The borrow gives up its wait. `true` if no grant came before (nothing to
    /// release: a later grant is the waiter's to pass on); `false` if one did (see
    /// [`take_grant`](Self::take_grant)).
    pub(crate) fn give_up(&self) -> bool {
        matches!(
            self.0.compare_exchange(CLAIM_WAITING, CLAIM_DROPPED, Ordering::AcqRel, Ordering::Acquire),
            Ok(_) | Err(CLAIM_DROPPED)
        )
    }
    /// Whether a grant not collected is the waiter's to pass on (the borrow gave up
    /// before it came), not the borrow's entry's.
    fn passes_on_grant(&self) -> bool {
        self.0.load(Ordering::Acquire) == CLAIM_DROPPED
    }
}

/// Who waits, where and since when: what diagnostics show of a waiter.
/// Packed (24 bytes without the `diagnostics` feature) to keep a slot in one cache line.
pub(crate) struct WaitMeta {
    /// Who waits, if known (a tracked task, a thread, or a runtime task id): an
    /// [`OwnerId`]'s raw value, 0 for none.
    owner: u64,
    /// The waiter's acquire site.
    pub(crate) site: Site,
    /// When it began to wait (a requeued condition waiter keeps the wait's start), and
    /// in the top bit whether the long-wait warning was given for it.
    since: Stamp,
    /// What its owner held when it parked (the `diagnostics` feature), for the wait-for
    /// graph: only owners that wait can be in a cycle.
    #[cfg(feature = "diagnostics")]
    pub(crate) holding: Box<[crate::info::Held]>,
}

impl WaitMeta {
    pub(crate) fn new(owner: Option<OwnerId>, site: Site) -> Self {
        WaitMeta { since: Stamp::now(), ..Self::new_unstamped(owner, site) }
    }
    /// A waiter that began to wait at `since` (one queued again keeps its start).
    pub(crate) fn with_since(owner: Option<OwnerId>, site: Site, since: Stamp) -> Self {
        WaitMeta { since, ..Self::new_unstamped(owner, site) }
    }
    fn new_unstamped(owner: Option<OwnerId>, site: Site) -> Self {
        WaitMeta {
            owner: owner.map_or(0, OwnerId::as_u64),
            site,
            since: Stamp::ZERO,
            #[cfg(feature = "diagnostics")]
            holding: Box::default(),
        }
    }
    pub(crate) fn owner(&self) -> Option<OwnerId> {
        OwnerId::from_u64(self.owner)
    }
    pub(crate) fn since(&self) -> Stamp {
        self.since.without_mark()
    }
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    fn warned(&self) -> bool {
        self.since.is_marked()
    }
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    fn set_warned(&mut self) {
        self.since = self.since.marked();
    }
}

struct Slot {
    /// Permits wanted: at most `u32::MAX` (tokio's `acquire_many` takes a `u32`, an
    /// RwLock has at most `u32::MAX` readers, the rest want one).
    wants: u32,
    /// A condition waiter moved here by a notify: it must be granted, never woken to
    /// try again ([`WaitQueue::wake_front`]), since its future does not retry.
    requeued: bool,
    prev: Link,
    next: Link,
    meta: WaitMeta,
    waker: Option<Waker>,
    settlement: SettlementPtr,
}

/// A waiter taken out of a queue, not settled yet: it must be queued again
/// ([`WaitQueue::push_requeued`]) or settled ([`Parked::settle`]).
pub(crate) struct Parked {
    wants: u32,
    meta: WaitMeta,
    waker: Option<Waker>,
    settlement: SettlementPtr,
}

impl Parked {
    /// How many permits it waits for.
    pub(crate) fn wants(&self) -> usize {
        self.wants as usize
    }

    /// Settles it granted (or failed) and queues its waker for waking.
    pub(crate) fn settle(self, granted: bool, wakes: &mut WakeList) {
        wakes.push(self.waker);
        self.settlement.settle(if granted { GRANTED } else { FAILED });
    }
}

/// FIFO of waiters in slab slots.
pub(crate) struct WaitQueue {
    slots: Slab<Slot>,
    head: Link,
    tail: Link,
    /// The queued waiters that wait for a hold their own owner has (self-waits), kept
    /// apart so that slots stay small and a queue without self-waits (the common case)
    /// pays one length check for them.
    self_waits: Vec<SelfWait>,
}

/// A queued self-wait: since when, and whether it was reported yet
/// ([`WaitQueue::lasting_self_waits`]).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
struct SelfWait {
    key: usize,
    since: Stamp,
    reported: bool,
}

impl Default for WaitQueue {
    fn default() -> Self {
        WaitQueue { slots: Slab::new(), head: NIL, tail: NIL, self_waits: Vec::new() }
    }
}

impl WaitQueue {
    /// Number of waiters queued.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Queues a waiter for `permits` at the back, or, with `at_front`, at the front: a
    /// waiter that was woken to try again ([`Outcome::Woken`]) and lost the race for the
    /// permits goes back where it was (eventual fairness lets others take the permits
    /// first, never take its place). Returns its slot key.
    ///
    /// # Safety
    /// `settlement` must stay at its address, and alive, until it reads an outcome other
    /// than `Waiting` or the slot is removed with [`WaitQueue::remove`]: the queue
    /// writes the outcome through a pointer to it. A pinned future that removes its slot
    /// in `Drop` while still waiting keeps this (pinning guarantees `Drop` runs before
    /// the memory is reused).
    #[inline]
    pub(crate) unsafe fn park(
        &mut self,
        permits: usize,
        waker: Waker,
        settlement: &Settlement,
        meta: WaitMeta,
        self_wait: bool,
        at_front: bool,
    ) -> usize {
        let since = meta.since();
        let slot = Slot {
            wants: wants(permits),
            requeued: false,
            meta,
            waker: Some(waker),
            settlement: SettlementPtr(NonNull::from(settlement)),
            prev: NIL,
            next: NIL,
        };
        let key = if at_front { self.link_front(slot) } else { self.link_back(slot) };
        if self_wait {
            self.self_waits.push(SelfWait { key, since, reported: false });
        }
        key
    }

    /// Takes the head waiter out and wakes it to try again, without granting it
    /// anything ([`Outcome::Woken`]): the eventually fair release, which puts the permits
    /// back for whoever takes them first. `false` (nothing done) if the queue is empty or
    /// its head is a requeued condition waiter, which must be granted instead.
    pub(crate) fn wake_front(&mut self, wakes: &mut WakeList) -> bool {
        match self.slots.get(self.head as usize) {
            Some(slot) if !slot.requeued => {}
            _ => return false,
        }
        let slot = self.take(self.head as usize);
        wakes.push(slot.waker);
        slot.settlement.settle(WOKEN);
        true
    }

    /// Puts `slot` in the slab and links it at the front of the queue; returns its key.
    fn link_front(&mut self, mut slot: Slot) -> usize {
        slot.prev = NIL;
        slot.next = self.head;
        let key = self.slots.insert(slot);
        match self.head {
            NIL => self.tail = link(key),
            head => self.slots[head as usize].prev = link(key),
        }
        self.head = link(key);
        key
    }

    /// Puts `slot` in the slab and links it at the back of the queue; returns its key.
    #[inline]
    fn link_back(&mut self, mut slot: Slot) -> usize {
        slot.prev = self.tail;
        slot.next = NIL;
        let key = self.slots.insert(slot);
        match self.tail {
            NIL => self.head = link(key),
            tail => self.slots[tail as usize].next = link(key),
        }
        self.tail = link(key);
        key
    }

    /// Takes the head waiter out as it is, to move it to another queue (a notify's
    /// requeue).
    pub(crate) fn pop_front(&mut self) -> Option<Parked> {
        if self.head == NIL {
            return None;
        }
        let slot = self.take(self.head as usize);
        Some(Parked { wants: slot.wants, meta: slot.meta, waker: slot.waker, settlement: slot.settlement })
    }

    /// Queues a waiter taken out of another queue at the back, and tells it where it is
    /// now ([`Outcome::Requeued`]). Returns its key.
    pub(crate) fn push_requeued(&mut self, parked: Parked) -> usize {
        let key = self.link_back(Slot {
            wants: parked.wants,
            requeued: true,
            meta: parked.meta,
            waker: parked.waker,
            settlement: parked.settlement,
            prev: NIL,
            next: NIL,
        });
        self.slots[key].settlement.mark_requeued(key);
        key
    }

    /// How many waiters wait as `owner`. O(waiters): for snapshots only.
    /// Also records each as a self-wait from now on if it was not one yet (`owner` is the
    /// holder: it became so after they queued, as when a lock future of a task is granted
    /// the lock while the task waits for it again), for the lasting-self-wait check.
    pub(crate) fn waiting_as(&mut self, owner: OwnerId) -> usize {
        let now = Stamp::now();
        let mut count = 0;
        for (key, slot) in &self.slots {
            if slot.meta.owner() == Some(owner) {
                count += 1;
                if !self.self_waits.iter().any(|wait| wait.key == key) {
                    self.self_waits.push(SelfWait { key, since: now, reported: false });
                }
            }
        }
        count
    }

    /// The self-waits queued for `threshold` or longer that were not reported yet, as
    /// (owner, site, waited for); each is reported once. O(1) while no self-wait is queued.
    /// Only waits whose owner still is `holder` count: the holder may have changed since.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn lasting_self_waits(
        &mut self,
        threshold: Duration,
        holder: Option<OwnerId>,
    ) -> Vec<(Option<OwnerId>, Site, Duration)> {
        let mut lasting = Vec::new();
        for wait in &mut self.self_waits {
            let waited = wait.since.elapsed();
            let still = holder.is_some() && self.slots[wait.key].meta.owner() == holder;
            if still && !wait.reported && waited >= threshold {
                wait.reported = true;
                let meta = &self.slots[wait.key].meta;
                lasting.push((meta.owner(), meta.site, waited));
            }
        }
        lasting
    }

    /// The waiters in queue order, with what they want.
    pub(crate) fn waits(&self) -> impl Iterator<Item = (usize, &WaitMeta)> {
        let mut key = self.head;
        std::iter::from_fn(move || {
            let slot = self.slots.get(key as usize)?;
            key = slot.next;
            Some((slot.wants as usize, &slot.meta))
        })
    }

    /// The waiters queued for `threshold` or longer and not warned of yet, as (owner,
    /// site, waited for, wants); each is returned once. Looks at no more than
    /// [`LONG_WAIT_SCAN`] waiters from the head, so the check stays O(1) however long
    /// the queue: waiters queue in the order they began to wait (but for requeued
    /// condition waiters), so the head's are the longest waits.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn long_waits(
        &mut self,
        threshold: Duration,
    ) -> Vec<(Option<OwnerId>, Site, Duration, usize)> {
        let mut found = Vec::new();
        let mut key = self.head;
        for _ in 0..LONG_WAIT_SCAN {
            let Some(slot) = self.slots.get_mut(key as usize) else { break };
            key = slot.next;
            if slot.meta.warned() {
                continue;
            }
            let waited = slot.meta.since().elapsed();
            if waited < threshold {
                break;
            }
            slot.meta.set_warned();
            found.push((slot.meta.owner(), slot.meta.site, waited, slot.wants as usize));
        }
        found
    }

    /// Whether any self-wait is queued.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn has_self_waits(&self) -> bool {
        !self.self_waits.is_empty()
    }

    /// The head waiter's wanted permits.
    pub(crate) fn front_wants(&self) -> Option<usize> {
        Some(self.slots.get(self.head as usize)?.wants as usize)
    }

    /// Takes the head waiter out, settles it granted, and queues its waker for waking.
    /// Returns who it was (if known) and its acquire site.
    #[inline]
    pub(crate) fn grant_front(&mut self, wakes: &mut WakeList) -> (Option<OwnerId>, Site) {
        let key = self.head;
        assert!(key != NIL, "grant_front on an empty queue");
        let slot = self.take(key as usize);
        wakes.push(slot.waker);
        slot.settlement.settle(GRANTED);
        (slot.meta.owner(), slot.meta.site)
    }

    /// Fails every queued waiter (close, break) and queues all their wakers. O(waiters).
    pub(crate) fn fail_all(&mut self, wakes: &mut WakeList) {
        let mut key = self.head;
        self.self_waits.clear();
        while key != NIL {
            let slot = self.slots.remove(key as usize);
            key = slot.next;
            wakes.push(slot.waker);
            slot.settlement.settle(FAILED);
        }
        self.head = NIL;
        self.tail = NIL;
        self.free_burst_room();
    }

    /// Stores the waker a still-waiting slot should be woken with. Returns the replaced
    /// waker so the caller can drop it after unlocking; skips the clone when the stored
    /// one would wake the same task.
    pub(crate) fn update_waker(&mut self, key: usize, waker: &Waker) -> Option<Waker> {
        let slot = &mut self.slots[key];
        match &slot.waker {
            Some(current) if current.will_wake(waker) => None,
            _ => slot.waker.replace(waker.clone()),
        }
    }

    /// Removes a still-waiting slot (its future was dropped); the order of the rest is
    /// unchanged. Its settlement is left as it is. Returns the slot's waker for the
    /// caller to drop once the lock is released: a waker's drop may run any code,
    /// including a release of this very primitive (tokio #5429).
    #[must_use = "drop the waker after unlocking"]
    pub(crate) fn remove(&mut self, key: usize) -> Option<Waker> {
        self.take(key).waker
    }

    /// Unlinks slot `key` and takes it out of the slab.
    #[inline]
    fn take(&mut self, key: usize) -> Slot {
        let slot = self.slots.remove(key);
        if !self.self_waits.is_empty() {
            self.self_waits.retain(|wait| wait.key != key);
        }
        match slot.prev {
            NIL => self.head = slot.next,
            prev => self.slots[prev as usize].next = slot.next,
        }
        match slot.next {
            NIL => self.tail = slot.prev,
            next => self.slots[next as usize].prev = slot.prev,
        }
        if slot.prev == NIL && slot.next == NIL {
            self.free_burst_room();
        }
        slot
    }

    /// Frees the slab of an empty queue if a burst grew it past [`KEPT_SLOTS`].
    #[inline]
    fn free_burst_room(&mut self) {
        debug_assert!(self.slots.is_empty() && self.head == NIL && self.tail == NIL);
        if self.slots.capacity() > KEPT_SLOTS {
            self.free_slots();
        }
    }

    /// [`WaitQueue::free_burst_room`]'s rare part. The slab and list are empty, so
    /// freeing them drops no waker: no user code runs under the caller's lock.
    #[cold]
    #[inline(never)]
    fn free_slots(&mut self) {
        self.slots = Slab::new();
        self.self_waits = Vec::new();
    }

    /// Room for how many waiters the queue has now, without growing.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.capacity()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::block::ThreadSignal;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    /// Parks a waiter on its own settlement, kept in place by an `Rc` (which, unlike a
    /// moved `Box`, claims no unique access to it).
    fn park(queue: &mut WaitQueue, permits: usize, waker: Waker) -> (usize, std::rc::Rc<Settlement>) {
        let settlement = std::rc::Rc::new(Settlement::new());
        // SAFETY: each test keeps the `Rc` until the slot is settled or removed.
        let key = unsafe { queue.park(permits, waker, &settlement, WaitMeta::new(None, None), false, false) };
        (key, settlement)
    }

    #[test]
    fn fifo_grant_and_cancel_from_the_middle() {
        let mut queue = WaitQueue::default();
        let (_, a) = park(&mut queue, 1, noop());
        let (b_key, b) = park(&mut queue, 2, noop());
        let (_, c) = park(&mut queue, 3, noop());
        assert_eq!(queue.len(), 3);
        drop(queue.remove(b_key));
        assert_eq!(b.outcome(), Outcome::Waiting, "a removed waiter is not settled");
        let mut wakes = WakeList::default();
        assert_eq!(queue.front_wants(), Some(1));
        queue.grant_front(&mut wakes);
        assert_eq!(a.outcome(), Outcome::Granted);
        assert_eq!(c.outcome(), Outcome::Waiting);
        assert_eq!(queue.front_wants(), Some(3));
        queue.grant_front(&mut wakes);
        assert_eq!(c.outcome(), Outcome::Granted);
        assert!(queue.is_empty());
        assert_eq!(queue.front_wants(), None);
    }

    /// A woken waiter that lost the race goes back to the front, ahead of those that
    /// queued after it, and a self-wait stays recorded as one (its record went with the
    /// slot when it was woken).
    #[test]
    fn parking_at_the_front_goes_first_and_keeps_a_self_wait() {
        let mut queue = WaitQueue::default();
        let (_, _behind) = park(&mut queue, 1, noop());
        let settlement = std::rc::Rc::new(Settlement::new());
        // SAFETY: the `Rc` is kept until the slot is granted.
        let front = unsafe { queue.park(2, noop(), &settlement, WaitMeta::new(None, None), true, true) };
        assert!(queue.has_self_waits());
        assert_eq!(queue.front_wants(), Some(2));
        let mut wakes = WakeList::default();
        queue.grant_front(&mut wakes);
        assert_eq!(settlement.outcome(), Outcome::Granted);
        assert!(!queue.has_self_waits(), "its record went with its slot ({front})");
        assert_eq!(queue.front_wants(), Some(1));
    }

    /// The hand-off touches the head slot on every grant: one cache line (measured: a
    /// slot of 88 bytes cost the contended loop about 4%).
    #[test]
    #[cfg(not(feature = "diagnostics"))]
    fn a_slot_fits_one_cache_line() {
        assert!(std::mem::size_of::<Slot>() <= 64, "{}", std::mem::size_of::<Slot>());
    }

    /// A burst of waiters grows the slab; once they are all gone, by grants, removals or
    /// a fail-all, the room is freed, and a queue that never grew past the kept room
    /// keeps it (no reallocation per hand-off).
    #[test]
    fn an_emptied_queue_frees_the_room_a_burst_grew() {
        const BURST: usize = 4 * KEPT_SLOTS;
        let mut queue = WaitQueue::default();
        let mut wakes = WakeList::default();
        let waiters: Vec<_> = (0..BURST).map(|_| park(&mut queue, 1, noop())).collect();
        assert!(queue.capacity() >= BURST);
        for _ in 0..BURST - 1 {
            queue.grant_front(&mut wakes);
        }
        assert!(queue.capacity() >= BURST, "kept while a waiter is queued");
        drop(queue.remove(waiters[BURST - 1].0));
        assert_eq!(queue.capacity(), 0, "removing the last waiter frees the burst's room");

        let _burst: Vec<_> = (0..BURST).map(|_| park(&mut queue, 1, noop())).collect();
        queue.fail_all(&mut wakes);
        assert_eq!(queue.capacity(), 0, "a fail-all frees it too");

        let small: Vec<_> = (0..KEPT_SLOTS).map(|_| park(&mut queue, 1, noop())).collect();
        let kept = queue.capacity();
        for _ in &small {
            queue.grant_front(&mut wakes);
        }
        assert_eq!(queue.capacity(), kept, "a queue within the kept room keeps it");
        let (again, _settlement) = park(&mut queue, 1, noop());
        assert_eq!(queue.front_wants(), Some(1));
        drop(queue.remove(again));
    }

    #[test]
    fn fail_all_marks_every_queued_waiter_and_empties_the_queue() {
        let mut queue = WaitQueue::default();
        let waiters: Vec<_> = (0..10).map(|_| park(&mut queue, 1, noop())).collect();
        let mut wakes = WakeList::default();
        queue.grant_front(&mut wakes);
        queue.fail_all(&mut wakes);
        assert!(queue.is_empty());
        assert_eq!(wakes.len(), 10);
        assert_eq!(waiters[0].1.outcome(), Outcome::Granted);
        assert!(waiters[1..].iter().all(|(_, s)| s.outcome() == Outcome::Failed));
        // A new waiter after a fail-all is linked on its own.
        let (fresh, _settlement) = park(&mut queue, 1, noop());
        assert_eq!(queue.front_wants(), Some(1));
        drop(queue.remove(fresh));
        assert!(queue.is_empty());
    }

    #[test]
    fn update_waker_keeps_an_equivalent_waker_and_returns_a_replaced_one() {
        let mut queue = WaitQueue::default();
        let (key, _settlement) = park(&mut queue, 1, noop());
        assert!(queue.update_waker(key, &noop()).is_none());
        let signal = Arc::new(ThreadSignal::new());
        let other = Waker::from(signal.clone());
        assert!(queue.update_waker(key, &other).is_some());
        let mut wakes = WakeList::default();
        queue.grant_front(&mut wakes);
        wakes.wake_all();
        assert!(signal.take_wake(), "the new waker is the one woken");
    }
}
