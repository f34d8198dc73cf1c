//! The exclusive hold (a mutex's, an RwLock writer's): who holds it and where it was
//! taken (for errors, `statistics()`, self-waits and strict mode), and the cell where its
//! registration lives so that its guard is one pointer.

use std::sync::atomic::Ordering::Relaxed;

use crate::error::PrimitiveKind;
use crate::owner::{Caller, HoldTicket, OwnerId, Site, identity_for, owner_id_for};

use super::{Hold, SemCore};

/// A registered [`Hold`]'s ticket taken apart into its two words (the owner record,
/// null while the cell is empty; the slot). Stored and loaded a word at a time, never as
/// one 16-byte copy, whose load right after two 8-byte stores stalls store-to-load
/// forwarding (measured: an uncontended `try_lock` + drop 17 -> 22 ns).
pub(super) struct HoldWords(*mut (), usize);

impl HoldWords {
    pub(super) const EMPTY: HoldWords = HoldWords(std::ptr::null_mut(), 0);
}

// SAFETY: the words of a `Hold`, which is `Send`.
unsafe impl Send for HoldWords {}

impl SemCore {
    /// Keeps the registration of the exclusive hold just taken, for its guard.
    ///
    /// # Safety
    /// For this and [`take_exclusive_hold`](Self::take_exclusive_hold): the caller is the
    /// guard of the current exclusive hold (it holds this core's exclusive permits and
    /// has not given them back), reached through `&mut`: no other guard can exist, and
    /// this one makes no second call at the same time. Each access before the permits'
    /// release happens before the next holder's, through the release and acquire of the
    /// permits themselves. The cell is empty between holds: a guard takes the hold out
    /// before its permits go back, and a hold is put once.
    #[inline]
    pub(crate) unsafe fn put_exclusive_hold(&self, hold: Hold) {
        // Anonymous: the cell is empty already, nothing to store and nothing to load later.
        let Some(ticket) = hold.ticket else { return };
        let (owner, slot) = ticket.into_words();
        // SAFETY: by the caller's contract, this is the only access to the cell now.
        self.exclusive_hold.with_mut(|cell| unsafe {
            debug_assert!((*cell).0.is_null(), "a previous exclusive hold left its registration");
            (*cell).0 = owner.as_ptr();
            (*cell).1 = slot;
        });
    }

    /// Takes the registration of the current exclusive hold out, leaving the cell empty.
    ///
    /// # Safety
    /// As for [`put_exclusive_hold`](Self::put_exclusive_hold).
    #[inline]
    pub(crate) unsafe fn take_exclusive_hold(&self) -> Hold {
        // SAFETY: by the caller's contract, this is the only access to the cell now; the
        // words are one hold's, put once and taken once (the owner word is cleared).
        self.exclusive_hold.with_mut(|cell| unsafe {
            let Some(owner) = std::ptr::NonNull::new((*cell).0) else { return Hold::default() };
            (*cell).0 = std::ptr::null_mut();
            Hold { ticket: Some(HoldTicket::from_words(owner, (*cell).1)) }
        })
    }

    /// Records `owner` as the holder of an exclusive hold of `permits` (a hand-over).
    pub(crate) fn set_holder(&self, owner: OwnerId, permits: usize) {
        if permits == self.exclusive {
            self.holder.store(owner.as_u64(), Relaxed);
        }
    }

    /// The registered holder of a mutex (`None` when free or held anonymously).
    pub(crate) fn holder(&self) -> Option<OwnerId> {
        OwnerId::from_u64(self.holder.load(Relaxed))
    }

    /// Where the current exclusive hold was taken.
    pub(crate) fn holder_site(&self) -> Site {
        let site = self.holder_site.load(Relaxed);
        // SAFETY: `holder_site` only ever holds null or a pointer made from a
        // `&'static Location` (see `record_holder`), valid for the whole program.
        unsafe { site.as_ref() }
    }

    /// Records the owner and site of an exclusive hold that begins now.
    #[inline]
    pub(super) fn record_holder(&self, owner: OwnerId, site: Site) {
        self.holder.store(owner.as_u64(), Relaxed);
        let site = site.map_or(std::ptr::null_mut(), |site| std::ptr::from_ref(site).cast_mut());
        self.holder_site.store(site, Relaxed);
    }

    /// Clears the exclusive holder (the hold ends, or will never be collected).
    #[inline]
    pub(super) fn clear_holder(&self) {
        // Only if one was recorded: an anonymous hold leaves it 0, and a store just
        // before the release's CAS would make that CAS wait for it to drain.
        // A swap, not a store: a scope's forward (`forward_holder`) may move the holder
        // meanwhile, and a plain store after a load of the old value may be ordered
        // before that compare-exchange, leaving the forward's owner recorded (loom's
        // `a_scopes_forward_races_a_release_elsewhere`).
        // An untracked runtime task's identity is never forwarded (it has no scopes):
        // a plain store clears it, without the read-modify-write (an atomic instruction
        // on the uncontended path of every lock in a tokio task).
        match OwnerId::from_u64(self.holder.load(Relaxed)) {
            None => return,
            Some(holder) if holder.is_runtime_task() => self.holder.store(0, Relaxed),
            Some(_) => {
                self.holder.swap(0, Relaxed);
            }
        }
        self.holder_site.store(std::ptr::null_mut(), Relaxed);
    }

    /// Would waiting certainly deadlock (a wait is refused only then)? Only a mutex's holder asking
    /// again through an identity API (`Lock::acquire`: a manual hold is never a sibling
    /// sub-future's), or any self-wait on a strict mutex. An RAII re-lock by the same
    /// task waits, as in tokio: a sibling sub-future may hold the guard.
    /// Inline, with the lookup of who asks out of line: an ordinary async or blocking
    /// acquire of a mutex that is not strict (the common case) asks nobody.
    #[inline]
    pub(super) fn would_deadlock(&self, caller: Caller) -> bool {
        self.kind == PrimitiveKind::Mutex
            && (caller.is_manual() || self.is_strict())
            && match self.holder.load(Relaxed) {
                0 => false,
                holder => self.holder_asks_again(caller, holder),
            }
    }

    /// [`SemCore::would_deadlock`]'s lookup: is the one asking the recorded holder?
    #[inline(never)]
    fn holder_asks_again(&self, caller: Caller, holder: u64) -> bool {
        let me = if caller.is_manual() { owner_id_for(caller) } else { identity_for(caller) };
        me.is_some_and(|me| me.as_u64() == holder)
    }

    /// A grant (of `permits`) that its waiter will never collect: it was recorded as the
    /// holder if exclusive (see `grant_waiters`), which it no longer is.
    pub(crate) fn forget_grantee(&self, permits: usize) {
        if permits == self.exclusive {
            self.clear_holder();
        }
    }
}
