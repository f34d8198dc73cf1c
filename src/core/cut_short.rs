//! A critical section cut short by a cancellation.
//!
//! Why this exists: a future dropped at an `.await` inside a critical section (a
//! timeout, a losing `select!` branch, an aborted task) drops its guard like any guard,
//! and the data stays as the section left it at that `.await`, possibly half-updated.
//! The guard's drop alone cannot tell that from a finished section. Two places can:
//!
//! - `Mutex::with_lock` / `RwLock::with_write` run the section themselves, so they see
//!   its future dropped before it returned: [`SemCore::end_hold_cancelled`] breaks the
//!   lock (`Cancelled`), since the caller asked for exactly that by using them.
//! - A tracked owner's cancellation (`Tracked`'s drop) knows, before it drops its
//!   future, which certainly owned exclusive holds it still has. It *arms* their cores
//!   ([`SemCore::arm_section`]): the hold's tag and the owner go under the lot lock, and
//!   `cut_short_armed` is set, the one load the release path (`end_hold`) pays. The
//!   drop of the hold so armed is the section cut short
//!   ([`SemCore::end_hold_armed`]): counted, reported, and released, or, with
//!   `break_on_cancel()`, broken (`Cancelled`). Counting is the default because a
//!   cancel-safe section (one that never leaves the data torn at an `.await`) is valid
//!   tokio code, which must keep working.
//!
//! No false report: a hold released before the cancellation began is not registered
//! any more, so never armed; an owned hold (which may have moved) is not armed; a hold
//! taken during the cancellation (by a `Drop` impl) is a different hold, whose tag does
//! not match; a completed task is never cancelled. A hold armed but released elsewhere
//! is decided once by its ticket: the release counts it only if it, not the owner's
//! exit, got the hold back, so it is counted once or not at all, and a finished
//! section never breaks.

use std::panic::Location;

use std::sync::atomic::Ordering::Relaxed;

use crate::error::AbandonReason;
use crate::id::{OwnerId, Site};
use crate::owner::{Abandoner, Caller, HoldTicket, OrphanTag, owner_id_for};

use super::{Hold, SemCore};

/// The exclusive hold of an owner being cancelled (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armed {
    tag: OrphanTag,
    owner: OwnerId,
}

/// How many critical sections of a lock were cut short by a cancellation, and the
/// latest one: a tracked task (or tracked scope) dropped unfinished while it held the
/// lock, or a [`Mutex::with_lock`](crate::Mutex::with_lock) /
/// [`RwLock::with_write`](crate::RwLock::with_write) section whose future was dropped
/// before it finished. Counted whether the section broke the lock or not.
///
/// ```
/// let mutex = ownsync::Mutex::new(0);
/// let cut_short = mutex.statistics().cut_short();
/// assert_eq!(cut_short.count(), 0);
/// assert!(cut_short.last().is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutShort {
    count: u64,
    last: Option<(OwnerId, Site)>,
}

impl CutShort {
    /// How many sections were cut short so far.
    ///
    /// ```
    /// assert_eq!(ownsync::RwLock::new(()).statistics().cut_short().count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The owner whose section was cut short last, and where it took the lock (if
    /// known).
    ///
    /// ```
    /// assert_eq!(ownsync::Mutex::new(()).statistics().cut_short().last(), None);
    /// ```
    pub fn last(&self) -> Option<(OwnerId, Option<&'static Location<'static>>)> {
        self.last
    }
}

impl SemCore {
    /// Turns `break_on_cancel` on: see the module docs.
    pub(crate) fn set_break_on_cancel(&self) {
        self.break_on_cancel.store(true, Relaxed);
    }
    pub(crate) fn is_break_on_cancel(&self) -> bool {
        self.break_on_cancel.load(Relaxed)
    }

    /// `owner` is being cancelled with the hold `tag` of `permits` registered to it:
    /// arms the core if that is its exclusive hold. Whether it did.
    pub(crate) fn arm_section(&self, tag: OrphanTag, permits: usize, owner: OwnerId) -> bool {
        if permits != self.exclusive {
            return false;
        }
        self.shared.lock().armed = Some(Armed { tag, owner });
        self.cut_short_armed.store(true, Relaxed);
        true
    }

    /// The cancellation that armed `tag` is over: whatever of it was not dropped meanwhile
    /// (a guard moved elsewhere, leaked) is its owner's exit's to settle.
    pub(crate) fn disarm_section(&self, tag: OrphanTag) {
        let mut shared = self.shared.lock();
        if shared.armed.is_some_and(|armed| armed.tag == tag) {
            shared.armed = None;
            self.cut_short_armed.store(false, Relaxed);
        }
    }

    /// Takes the arm out, whichever hold it is for.
    fn take_armed(&self) -> Option<Armed> {
        let mut shared = self.shared.lock();
        self.cut_short_armed.store(false, Relaxed);
        shared.armed.take()
    }

    /// [`SemCore::end_hold`] of an exclusive hold while the core is armed. THE DECISION:
    /// the hold armed by its owner's cancellation, dropped now by that cancellation (in
    /// the owner's context), is a section cut short
    /// (unless the thread unwinds: a panic keeps its own rule, `Panicked`). Any other
    /// hold found a stale arm (the armed one ended without its guard's drop: leaked and
    /// settled by the exit, downgraded, or already settled) and ends as usual.
    #[cold]
    #[inline(never)]
    pub(super) fn end_hold_armed(&self, hold: Hold, permits: usize) {
        let armed = self.take_armed();
        let ticket = hold.ticket;
        // The armed hold, dropped by its owner's cancellation itself: in that owner's
        // context (its `Tracked`'s drop). The same hold released meanwhile on another
        // thread (a `'static` guard sent away) ends a section that finished there: a
        // plain release, never taken for one cut short.
        let mine = armed.filter(|armed| {
            ticket.as_ref().is_some_and(|ticket| ticket.is_live() && ticket.orphan_tag() == armed.tag)
                && owner_id_for(Caller::Async) == Some(armed.owner)
        });
        match (mine, ticket) {
            (Some(armed), Some(ticket)) if !std::thread::panicking() => {
                self.end_hold_cut_short(ticket, permits, armed.owner);
            }
            (_, ticket) => self.end_hold(Hold { ticket }, permits),
        }
    }

    /// The armed hold's guard is dropped: counted, then released (the default) or
    /// broken (`break_on_cancel`), naming `owner`.
    fn end_hold_cut_short(&self, ticket: HoldTicket, permits: usize, owner: OwnerId) {
        let site = self.holder_site().or_else(|| ticket.site());
        let tag = ticket.orphan_tag();
        // Given back once: if the owner's exit claimed it first (a guard dropped elsewhere
        // after the cancellation), the exit settles it, and it is not counted here.
        if !self.settle_claim(ticket.unregister(), tag, permits) {
            return;
        }
        let breaks = self.is_break_on_cancel();
        self.count_cut_short(owner, site, breaks);
        if breaks {
            self.abandon_cancelled(&Abandoner { id: owner, name: None }, permits, site);
        } else {
            self.release_hold(permits);
        }
    }

    /// A `with_lock` / `with_write` section's future was dropped before the section
    /// finished: the lock breaks (`Cancelled`), naming the hold's owner, or for an
    /// untracked caller its tokio task (feature `tokio`) or else a fresh anonymous id, and
    /// `site`, where the section was entered. A drop during a panic keeps the panic's rule.
    #[cold]
    #[inline(never)]
    pub(crate) fn end_hold_cancelled(&self, hold: Hold, permits: usize, site: Site) {
        if std::thread::panicking() {
            return self.end_hold(hold, permits);
        }
        let abandoner = hold.ticket.as_ref().and_then(HoldTicket::abandoner).unwrap_or_else(|| Abandoner {
            id: crate::runtime::task_identity().unwrap_or_else(OwnerId::next_anonymous),
            name: None,
        });
        if let Some(ticket) = hold.ticket {
            let tag = ticket.orphan_tag();
            if !self.settle_claim(ticket.unregister(), tag, permits) {
                return;
            }
        }
        // An arm is for this hold (the owner's cancellation under way) or stale: either
        // way it is settled here.
        if self.cut_short_armed.load(Relaxed) {
            self.take_armed();
        }
        self.count_cut_short(abandoner.id, site, true);
        self.abandon_cancelled(&abandoner, permits, site);
    }

    fn abandon_cancelled(&self, abandoner: &Abandoner, permits: usize, site: Site) {
        crate::owner::Abandon::abandon(self, abandoner, AbandonReason::Cancelled, permits, site);
        self.return_after_break(permits);
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn count_cut_short(&self, owner: OwnerId, site: Site, breaks: bool) {
        {
            let mut shared = self.shared.lock();
            shared.cut_short.count += 1;
            shared.cut_short.last = Some((owner, site));
        }
        // A break is reported by the break's own event; a release is reported here.
        #[cfg(feature = "tracing")]
        if !breaks {
            let (kind, name) = (self.kind, self.name.as_deref());
            tracing::warn!(
                target: "ownsync",
                primitive = %kind,
                name,
                owner = %owner,
                site = %crate::info::ShowSite(site),
                "{kind} section cut short: {owner} was cancelled while holding it (taken at {}); \
                 released, its data may be half-updated",
                crate::info::ShowSite(site),
            );
        }
    }
}
