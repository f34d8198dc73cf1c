//! The model of critical sections cut short by a cancellation: `Mutex::with_lock` /
//! `RwLock::with_write` (a section's future dropped after it began breaks the lock
//! `Cancelled`; one that finishes releases; one dropped while it waits changes nothing),
//! and a tracked owner cancelled while a certainly owned exclusive guard is alive in it
//! (counted in `statistics().cut_short()` and released, or, with `break_on_cancel()`,
//! broken `Cancelled` naming the owner; owned guards, guards of others, shared holds and
//! guards dropped before the cancel are released as usual and never counted).
//!
//! `statistics().anonymous_holds()` (holds taken in untracked tokio tasks) is not
//! modelled: it needs tokio tasks, and the run polls owners by hand with no runtime.

use ownsync::{AbandonReason, OwnerId};

use crate::model::{HoldState, Model, Seen, What};

impl Model {
    /// `with_lock` (`what` = `Lock`) or `with_write` (`Write`) by `owner`, polled once in
    /// its poll and then dropped: `Ok` if the section ran to its end (released), else
    /// `Pending` (cut short if it had begun: `cut_short`), or why it was refused.
    pub fn with_section(&mut self, what: What, owner: OwnerId, cut_short: bool) -> Seen {
        let (seen, ticket) = self.acquire(what, Some(owner), None, false, true);
        match seen {
            Seen::Ok if cut_short => {
                let index = self.holds.len() - 1;
                let hold = self.holds.remove(index);
                let prim = what.prim();
                self.core_mut(prim).cut_short += 1;
                self.abandon(prim, owner, AbandonReason::Cancelled, hold.permits);
                // The guard is dropped by the break: counted back for a repair.
                self.core_mut(prim).available += hold.permits;
                Seen::Pending
            }
            Seen::Ok => {
                self.on_release(self.holds.len() - 1);
                Seen::Ok
            }
            // Cancelled while it waits: nothing began, nothing breaks.
            Seen::Pending => {
                self.cancel(ticket.expect("queued"));
                Seen::Pending
            }
            refused => refused,
        }
    }

    /// Owner `owner` cancelled (its task dropped unfinished) while hold `index` is alive
    /// in its future: the hold is dropped inside the cancellation, then the owner exits
    /// `Cancelled` (what it still holds elsewhere is abandoned as on any exit).
    pub fn on_cancel_holding(&mut self, index: usize, owner: OwnerId) {
        let hold = self.holds.remove(index);
        let prim = hold.what.prim();
        let exclusive = prim.guards_data() && hold.permits == self.core(prim).exclusive();
        // Certainly owned by the owner cancelled: borrowed by it, or forwarded to it
        // from a nested scope that completed; never an owned (moving) guard.
        let armed = exclusive
            && match hold.state {
                HoldState::Borrowed(o) => o == owner,
                HoldState::Forwarded { to, moves: false, .. } => to == owner,
                _ => false,
            };
        if armed {
            self.core_mut(prim).cut_short += 1;
            if self.break_on_cancel {
                self.abandon(prim, owner, AbandonReason::Cancelled, hold.permits);
                self.core_mut(prim).available += hold.permits;
            } else {
                self.give_back(prim, hold.permits);
            }
        } else {
            self.release_hold(&hold);
        }
        self.on_exit(owner, AbandonReason::Cancelled);
    }
}
