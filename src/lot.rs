//! The waiter queue under every primitive (Trio's ParkingLot).
//!
//! A waiter is a node inside its own waiting future ([`Waiter`]), pinned there while it
//! waits (and on the thread's stack for a blocking caller), and the queue is a doubly
//! linked list of those nodes, as in tokio's `batch_semaphore`, futures-intrusive and
//! maitake's `WaitQueue`. Parking links the node at the back, a grant unlinks the head,
//! a cancelled waiter unlinks itself from the middle: all O(1), and a contended acquire
//! allocates nothing and copies nothing into the queue. When the queue grants a waiter
//! (or fails it: close, break), it unlinks it and writes the outcome into the node's
//! word, the last thing it does with the node. The woken future reads that word without
//! taking any lock, so a hand-off costs the releaser's lock and nothing more on the
//! waiter's side; and a grant is never lost, because the word belongs to the future
//! until it is dropped, and a dropped future with a grant passes it on.
//!
//! The queue itself is not locked; its owner (the counted core, or a condition) keeps it
//! under one lock, and that lock guards every node linked in it: a node's links, waker
//! and description are touched only under the lock of the queue it is linked in, by the
//! queue or by the future (a new waker, its own removal), or by the future alone while
//! it is linked nowhere (before it parks, after it is settled). Which queue that is the
//! word tells: a condition waiter moved onto its mutex's queue by a notify reads
//! [`Outcome::Requeued`]. Wakers are collected in a [`WakeList`] and woken after that
//! lock is released (tokio #5429).
//!
//! Blocking callers do not get a second wait loop: [`block_on`](crate::block::block_on)
//! polls the same future with a waker that unparks the thread.

use std::marker::PhantomPinned;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::Duration;

use crate::clock::Stamp;
use crate::id::{OwnerId, Site};
use crate::loom::{AtomicUsize, UnsafeCell};
use crate::wake::WakeList;

/// A link to a queued node: the previous or next waiter, if any.
type Link = Option<NonNull<Waiter>>;

/// A waiter's wanted permits as its node keeps them (see [`Node::wants`]).
fn wants(permits: usize) -> u32 {
    u32::try_from(permits).expect("a waiter wants at most u32::MAX permits")
}

/// How many waiters from the head one long-wait check looks at.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
const LONG_WAIT_SCAN: usize = 32;

/// What became of a waiter, as its [`Waiter`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still queued.
    Waiting,
    /// Handed the permits it asked for; they are the waiter's even if it never runs again.
    Granted,
    /// Failed: the primitive closed or broke while it waited.
    Failed,
    /// Moved by a notify from a condition's queue onto its mutex's, where it waits now
    /// (a condition waiter only: see `Condition`).
    Requeued,
    /// Taken out of the queue and woken, not granted: the permits were put back for
    /// anyone to take, and the waiter is to try again (eventual fairness: see
    /// [`WaitQueue::wake_front`]).
    Woken,
}

const WAITING: usize = 0;
const GRANTED: usize = 1;
const FAILED: usize = 2;
const REQUEUED: usize = 3;
const WOKEN: usize = 4;

/// A waiter: the node a waiting future keeps for the queue to link, and the word the
/// queue writes its outcome into.
///
/// The queue writes the word once (or twice, for a requeued condition waiter), under
/// its owner's lock, as the last thing it does with the node; the future reads it with
/// no lock (`Acquire` pairs with the queue's `Release`, so everything the granter did
/// before is visible). The rest of the node ([`Node`]) is the queue's while the waiter
/// is linked (see the module docs for who may touch it when).
///
/// A waiter whose grant a named borrow answers for (a limiter's borrower set) carries a
/// [`GrantClaim`] beside the word, marked as the grant is settled.
pub(crate) struct Waiter {
    word: AtomicUsize,
    claim: Option<Arc<GrantClaim>>,
    node: UnsafeCell<Node>,
    /// The queue keeps the node's address: a waiter must not move while linked.
    _pinned: PhantomPinned,
}

// SAFETY: the word and the claim are atomics; the node is touched only under the lock of
// the queue it is linked in, or by the future that owns it while it is linked nowhere
// (the module docs), so moving the future, or sharing it, to another thread races with
// nothing; a `Waker` is `Send + Sync`, and so is the description (`WaitMeta`).
unsafe impl Send for Waiter {}
// SAFETY: as above: through `&Waiter`, only the atomic word and claim are reachable
// without the queue's lock.
unsafe impl Sync for Waiter {}

/// The part of a waiter the queue links and reads (see [`Waiter`]). Kept small: it is
/// part of every acquire future, which is moved into place as an acquire begins, and a
/// future of more than 128 bytes is moved by a call to `memcpy` (measured: 58
/// instructions of a 1,100-instruction hand-off).
struct Node {
    /// The previous waiter: read only while this one is not the head (the head's is
    /// stale, see [`WaitQueue::unlink`]).
    prev: Link,
    next: Link,
    waker: Option<Waker>,
    meta: WaitMeta,
    /// Since when it counts as a self-wait, if [`SELF_WAIT`] is set.
    self_wait_since: Stamp,
    /// Permits wanted: at most `u32::MAX` (tokio's `acquire_many` takes a `u32`, an
    /// RwLock has at most `u32::MAX` readers, the rest want one).
    wants: u32,
    /// [`REQUEUED_HERE`], [`SELF_WAIT`], [`SELF_WAIT_REPORTED`].
    flags: u8,
}

/// A condition waiter moved here by a notify: it must be granted, never woken to try
/// again ([`WaitQueue::wake_front`]), since its future does not retry.
const REQUEUED_HERE: u8 = 1;
/// It waits for a hold its own owner has (a self-wait), since `self_wait_since`.
const SELF_WAIT: u8 = 2;
/// Its self-wait was reported ([`WaitQueue::lasting_self_waits`]).
const SELF_WAIT_REPORTED: u8 = 4;

impl Waiter {
    pub(crate) fn new() -> Self {
        Self::with_claim(None)
    }

    /// A waiter whose grant `claim` answers for (see [`GrantClaim`]).
    pub(crate) fn claimed_by(claim: Arc<GrantClaim>) -> Self {
        Self::with_claim(Some(claim))
    }

    fn with_claim(claim: Option<Arc<GrantClaim>>) -> Self {
        Waiter {
            word: AtomicUsize::new(WAITING),
            claim,
            node: UnsafeCell::new(Node {
                prev: None,
                next: None,
                waker: None,
                meta: WaitMeta::new_unstamped(None, None),
                self_wait_since: Stamp::ZERO,
                wants: 0,
                flags: 0,
            }),
            _pinned: PhantomPinned,
        }
    }

    /// Whether the waiter itself passes on a grant it will not collect (dropped, or
    /// failed after the grant): yes, unless a claim answers for the grant (see
    /// [`GrantClaim::passes_on_grant`]).
    pub(crate) fn passes_on_grant(&self) -> bool {
        self.claim.as_ref().is_none_or(|claim| claim.passes_on_grant())
    }

    /// Back to `Waiting`, to queue again after an [`Outcome::Woken`]. Only while no
    /// queue links it.
    pub(crate) fn reset(&self) {
        self.word.store(WAITING, Ordering::Relaxed);
    }

    /// When it began to wait: once it has parked, while no queue links it (a waiter
    /// woken to try again that queues again keeps the start of its wait).
    pub(crate) fn parked_since(&mut self) -> Stamp {
        // SAFETY: `&mut self` and linked nowhere: nothing else reaches the node.
        self.node.with_mut(|node| unsafe { (*node).meta.since() })
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match self.word.load(Ordering::Acquire) {
            WAITING => Outcome::Waiting,
            GRANTED => Outcome::Granted,
            FAILED => Outcome::Failed,
            REQUEUED => Outcome::Requeued,
            _ => Outcome::Woken,
        }
    }
}

/// The node of the waiter at `waiter`.
///
/// # Safety
/// The caller holds the lock of the queue the waiter is linked in (or is about to be
/// linked in, or was just unlinked from), which keeps the waiter alive and in place
/// (see [`WaitQueue::park`]); and no other reference to this node is in use.
#[inline(always)]
unsafe fn node_at<'a>(waiter: NonNull<Waiter>) -> &'a mut Node {
    // SAFETY: the caller's contract: the waiter is alive and pinned, and the lock it holds
    // orders this access after every other one (the module docs).
    unsafe { &mut *waiter.as_ref().node.with_mut(|node| node) }
}

/// Queues the unlinked waiter's waker for waking and writes `outcome` into it: the
/// queue's last touch of its memory.
///
/// # Safety
/// As for [`node_at`], and the waiter was unlinked (anything else wanted from its node
/// read already): once the word is stored, its future may finish and free it.
#[inline(always)]
unsafe fn settle(waiter: NonNull<Waiter>, outcome: usize, wakes: &mut WakeList) {
    // SAFETY: the caller's contract keeps the waiter alive until the store below, and
    // nothing touches it after. Its waker is taken first; a claim is marked first, so
    // the grant is its borrower's before the waiter can see it.
    wakes.push(unsafe { node_at(waiter) }.waker.take());
    let waiter = unsafe { waiter.as_ref() };
    if outcome == GRANTED {
        if let Some(claim) = &waiter.claim {
            claim.grant();
        }
    }
    waiter.word.store(outcome, Ordering::Release);
}

const CLAIM_WAITING: usize = 0;
const CLAIM_GRANTED: usize = 1;
const CLAIM_TAKEN: usize = 2;
const CLAIM_DROPPED: usize = 3;

/// Who answers for a grant to a named borrow's waiter: the borrow's entry in its
/// limiter's borrower set, which shares this with the waiter's [`Waiter`].
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
/// Packed (24 bytes without the `diagnostics` feature) to keep a waiting future small.
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

/// A waiter unlinked from a queue, not settled yet: it must be queued again
/// ([`WaitQueue::push_requeued`]) or settled ([`Parked::settle`]), both under the lock
/// of the queue it came from (which keeps it in place: it reads `Waiting` still).
pub(crate) struct Parked(NonNull<Waiter>);

impl Parked {
    /// How many permits it waits for.
    pub(crate) fn wants(&self) -> usize {
        // SAFETY: `Parked`'s contract: the lock of the queue it came from is held.
        unsafe { node_at(self.0) }.wants as usize
    }

    /// Settles it granted (or failed) and queues its waker for waking.
    pub(crate) fn settle(self, granted: bool, wakes: &mut WakeList) {
        // SAFETY: as in `wants`; unlinked.
        unsafe { settle(self.0, if granted { GRANTED } else { FAILED }, wakes) };
    }
}

/// FIFO of waiters, linked through the nodes inside their futures (see the module docs).
#[derive(Default)]
pub(crate) struct WaitQueue {
    head: Link,
    tail: Link,
    len: usize,
    /// How many of the queued waiters wait for a hold their own owner has (self-waits):
    /// a queue without any (the common case) pays one check for them.
    self_waits: usize,
}

// SAFETY: the queue is only reached under its owner's lock, and so are the nodes it links
// (`Waiter` is `Send`): moving the queue to another thread moves no access with it.
unsafe impl Send for WaitQueue {}

impl WaitQueue {
    /// Number of waiters queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Links `waiter`, wanting `permits`, at the back, or, with `at_front`, at the front:
    /// a waiter that was woken to try again ([`Outcome::Woken`]) and lost the race for
    /// the permits goes back where it was (eventual fairness lets others take the
    /// permits first, never take its place).
    ///
    /// # Safety
    /// The waiter must be linked in no queue, and must stay at its address, and alive,
    /// until it reads an outcome other than `Waiting` and `Requeued` or it is unlinked
    /// with [`WaitQueue::remove`] (under this queue's lock): the queue reaches it through
    /// a pointer. A pinned future that removes its waiter in `Drop` while still waiting
    /// keeps this (pinning guarantees `Drop` runs before the memory is reused).
    #[inline]
    pub(crate) unsafe fn park(
        &mut self,
        waiter: &Waiter,
        permits: usize,
        waker: Waker,
        meta: WaitMeta,
        self_wait: bool,
        at_front: bool,
    ) {
        let at = NonNull::from(waiter);
        // SAFETY: linked nowhere, and the caller holds this queue's lock.
        let node = unsafe { node_at(at) };
        debug_assert!(node.waker.is_none() && node.flags & SELF_WAIT == 0, "parked twice");
        node.wants = wants(permits);
        node.flags = 0;
        if self_wait {
            node.flags = SELF_WAIT;
            node.self_wait_since = meta.since();
            self.self_waits += 1;
        }
        node.meta = meta;
        node.waker = Some(waker);
        if at_front { self.link_front(at) } else { self.link_back(at) }
    }

    /// Takes the head waiter out and wakes it to try again, without granting it
    /// anything ([`Outcome::Woken`]): the eventually fair release, which puts the permits
    /// back for whoever takes them first. `false` (nothing done) if the queue is empty or
    /// its head is a requeued condition waiter, which must be granted instead.
    pub(crate) fn wake_front(&mut self, wakes: &mut WakeList) -> bool {
        let Some(head) = self.head else { return false };
        // SAFETY (both): linked here, under this queue's lock; unlinked before it is
        // settled.
        if unsafe { node_at(head) }.flags & REQUEUED_HERE != 0 {
            return false;
        }
        unsafe {
            self.unlink(head);
            settle(head, WOKEN, wakes);
        }
        true
    }

    /// Links the unlinked waiter at `at` before the head.
    fn link_front(&mut self, at: NonNull<Waiter>) {
        // SAFETY (both): under this queue's lock, `at` being linked and the head linked.
        let node = unsafe { node_at(at) };
        node.prev = None;
        node.next = self.head;
        match self.head {
            None => self.tail = Some(at),
            Some(head) => unsafe { node_at(head) }.prev = Some(at),
        }
        self.head = Some(at);
        self.len += 1;
    }

    /// Links the unlinked waiter at `at` after the tail.
    #[inline]
    fn link_back(&mut self, at: NonNull<Waiter>) {
        // SAFETY (both): under this queue's lock, `at` being linked and the tail linked.
        let node = unsafe { node_at(at) };
        node.prev = self.tail;
        node.next = None;
        match self.tail {
            None => self.head = Some(at),
            Some(tail) => unsafe { node_at(tail) }.next = Some(at),
        }
        self.tail = Some(at);
        self.len += 1;
    }

    /// Takes the head waiter out as it is, to move it to another queue (a notify's
    /// requeue).
    pub(crate) fn pop_front(&mut self) -> Option<Parked> {
        let head = self.head?;
        // SAFETY: linked here, under this queue's lock.
        unsafe { self.unlink(head) };
        Some(Parked(head))
    }

    /// Queues a waiter taken out of another queue at the back, and tells it where it is
    /// now ([`Outcome::Requeued`]). Call with both queues' locks held.
    pub(crate) fn push_requeued(&mut self, parked: Parked) {
        // SAFETY: `Parked`'s contract, and this queue's lock is held too: the waiter
        // moves from one to the other while both are held, so every later touch of it
        // takes this queue's lock (it reads `Requeued`).
        unsafe { node_at(parked.0) }.flags |= REQUEUED_HERE;
        self.link_back(parked.0);
        // SAFETY: not a settling store: the waiter is linked here now, and stays alive
        // until it is settled or removes itself under this queue's lock.
        unsafe { parked.0.as_ref() }.word.store(REQUEUED, Ordering::Release);
    }

    /// The queued waiters, in queue order.
    fn links(&self) -> impl Iterator<Item = NonNull<Waiter>> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let waiter = at?;
            // SAFETY: linked here, under this queue's lock (the caller's borrow of it).
            at = unsafe { node_at(waiter) }.next;
            Some(waiter)
        })
    }

    /// The queued nodes, in queue order, for the walks that mark them.
    fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> + '_ {
        // SAFETY: linked here, under this queue's lock, borrowed mutably for as long as
        // the nodes are; each is handed out once.
        self.links().map(|waiter| unsafe { node_at(waiter) })
    }

    /// How many waiters wait as `owner`. O(waiters): for snapshots only.
    /// Also records each as a self-wait from now on if it was not one yet (`owner` is the
    /// holder: it became so after they queued, as when a lock future of a task is granted
    /// the lock while the task waits for it again), for the lasting-self-wait check.
    pub(crate) fn waiting_as(&mut self, owner: OwnerId) -> usize {
        let now = Stamp::now();
        let mut count = 0;
        let mut recorded = 0;
        for node in self.nodes_mut() {
            if node.meta.owner() == Some(owner) {
                count += 1;
                if node.flags & SELF_WAIT == 0 {
                    node.flags |= SELF_WAIT;
                    node.self_wait_since = now;
                    recorded += 1;
                }
            }
        }
        self.self_waits += recorded;
        count
    }

    /// The self-waits queued for `threshold` or longer that were not reported yet, as
    /// (owner, site, waited for); each is reported once. O(1) while no self-wait is
    /// queued, O(waiters) while one is.
    /// Only waits whose owner still is `holder` count: the holder may have changed since.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn lasting_self_waits(
        &mut self,
        threshold: Duration,
        holder: Option<OwnerId>,
    ) -> Vec<(Option<OwnerId>, Site, Duration)> {
        let mut lasting = Vec::new();
        if self.self_waits == 0 {
            return lasting;
        }
        for node in self.nodes_mut() {
            if node.flags & (SELF_WAIT | SELF_WAIT_REPORTED) != SELF_WAIT {
                continue;
            }
            let owner = node.meta.owner();
            let waited = node.self_wait_since.elapsed();
            if holder.is_some() && owner == holder && waited >= threshold {
                node.flags |= SELF_WAIT_REPORTED;
                lasting.push((owner, node.meta.site, waited));
            }
        }
        lasting
    }

    /// The waiters in queue order, with what they want.
    pub(crate) fn waits(&self) -> impl Iterator<Item = (usize, &WaitMeta)> {
        // SAFETY: linked here, under this queue's lock, borrowed for as long as the
        // descriptions are; nothing changes a node while the queue is shared.
        self.links().map(|waiter| {
            let node: &Node = unsafe { node_at(waiter) };
            (node.wants as usize, &node.meta)
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
        for node in self.nodes_mut().take(LONG_WAIT_SCAN) {
            if node.meta.warned() {
                continue;
            }
            let waited = node.meta.since().elapsed();
            if waited < threshold {
                break;
            }
            node.meta.set_warned();
            found.push((node.meta.owner(), node.meta.site, waited, node.wants as usize));
        }
        found
    }

    /// Whether any self-wait is queued.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn has_self_waits(&self) -> bool {
        self.self_waits != 0
    }

    /// The head waiter's wanted permits.
    #[inline]
    pub(crate) fn front_wants(&self) -> Option<usize> {
        // SAFETY: linked here, under this queue's lock.
        Some(unsafe { node_at(self.head?) }.wants as usize)
    }

    /// Takes the head waiter out, settles it granted, and queues its waker for waking.
    /// Returns who it was (if known) and its acquire site.
    #[inline]
    pub(crate) fn grant_front(&mut self, wakes: &mut WakeList) -> (Option<OwnerId>, Site) {
        let head = self.head.expect("grant_front on an empty queue");
        // SAFETY: linked here, under this queue's lock; everything is read from the node
        // before the settling store, the last touch.
        let node = unsafe { self.unlink(head) };
        let grantee = (node.meta.owner(), node.meta.site);
        unsafe { settle(head, GRANTED, wakes) };
        grantee
    }

    /// Fails every queued waiter (close, break) and queues all their wakers. O(waiters).
    pub(crate) fn fail_all(&mut self, wakes: &mut WakeList) {
        let mut at = self.head.take();
        self.tail = None;
        self.len = 0;
        self.self_waits = 0;
        while let Some(waiter) = at {
            // SAFETY: linked here until now, under this queue's lock; the next link and
            // the waker are read before the settling store, the last touch.
            let node = unsafe { node_at(waiter) };
            at = node.next.take();
            node.prev = None;
            node.flags &= !(SELF_WAIT | SELF_WAIT_REPORTED);
            unsafe { settle(waiter, FAILED, wakes) };
        }
    }

    /// Stores the waker a still-waiting waiter should be woken with. Returns the
    /// replaced waker so the caller can drop it after unlocking; skips the clone when
    /// the stored one would wake the same task.
    ///
    /// # Safety
    /// `waiter` is linked in this queue (it reads `Waiting`, or `Requeued` for a mutex's
    /// queue, under this queue's lock).
    pub(crate) unsafe fn update_waker(&mut self, waiter: &Waiter, waker: &Waker) -> Option<Waker> {
        // SAFETY: the caller's contract.
        let node = unsafe { node_at(NonNull::from(waiter)) };
        match &node.waker {
            Some(current) if current.will_wake(waker) => None,
            _ => node.waker.replace(waker.clone()),
        }
    }

    /// Unlinks a still-waiting waiter (its future was dropped); the order of the rest is
    /// unchanged. Its word is left as it is. Returns its waker for the caller to drop
    /// once the lock is released: a waker's drop may run any code, including a release
    /// of this very primitive (tokio #5429).
    ///
    /// # Safety
    /// As for [`WaitQueue::update_waker`].
    #[must_use = "drop the waker after unlocking"]
    pub(crate) unsafe fn remove(&mut self, waiter: &Waiter) -> Option<Waker> {
        // SAFETY: the caller's contract.
        unsafe { self.unlink(NonNull::from(waiter)) }.waker.take()
    }

    /// Unlinks the waiter at `at` and returns its node.
    ///
    /// # Safety
    /// `at` is linked in this queue, whose lock the caller holds.
    #[inline]
    unsafe fn unlink<'a>(&mut self, at: NonNull<Waiter>) -> &'a mut Node {
        // SAFETY (all): the caller's contract; its neighbours are linked here too, and
        // each node is borrowed alone.
        let node = unsafe { node_at(at) };
        if self.head == Some(at) {
            // The head leaves (every grant): its successor's `prev` is left as it is,
            // since a head's is never read, so a hand-off writes to no other waiter's
            // memory (another task's future, last touched on another core).
            self.head = node.next;
            if node.next.is_none() {
                self.tail = None;
            }
        } else {
            let prev = node.prev.expect("a linked waiter that is not the head has a predecessor");
            unsafe { node_at(prev) }.next = node.next;
            match node.next {
                None => self.tail = Some(prev),
                Some(next) => unsafe { node_at(next) }.prev = Some(prev),
            }
        }
        node.prev = None;
        node.next = None;
        self.len -= 1;
        if node.flags & SELF_WAIT != 0 {
            node.flags &= !(SELF_WAIT | SELF_WAIT_REPORTED);
            self.self_waits -= 1;
        }
        node
    }
}

#[cfg(test)]
mod tests;
