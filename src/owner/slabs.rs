//! An owner record's two hold slabs: the local one, reached only in the owner's own
//! context (no lock, no atomic), and the shared one, for what other contexts do.

use std::sync::Arc;

use slab::Slab;

use super::abandon::Abandon;
use crate::id::Site;

pub(super) struct HoldEntry {
    pub(super) primitive: Arc<dyn Abandon>,
    pub(super) permits: usize,
    /// An owned hold that may have moved: orphaned, not abandoned, at the exit.
    pub(super) moves: bool,
    /// Where it was taken, for the error of its abandonment.
    pub(super) site: Site,
}

/// The holds registered from the owner's own context.
#[derive(Default)]
pub(super) struct LocalHolds {
    pub(super) holds: Slab<HoldEntry>,
    /// The entry of the hold released last in this context, left in the slab (not a hold
    /// any more), so that taking the same primitive again (a task that locks one mutex in
    /// a loop) reuses it as it is: no clone of the primitive, no entry moved.
    pub(super) spare: Option<usize>,
}

impl LocalHolds {
    /// Records a hold of `permits` on the primitive at `identity`; returns its key.
    /// Always inline, as `register_hold` and `SemCore::register` around it: the
    /// registration's hot path, which the compiler otherwise inlined or not depending on
    /// unrelated edits (15-25 instructions per tracked lock, callgrind).
    #[inline(always)]
    pub(super) fn insert(
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
    pub(super) fn release(&mut self, key: usize) -> Option<HoldEntry> {
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
pub(super) const KEPT_LIVE_SLAB_CAPACITY: usize = 64;

/// Drops an entry let go of by [`LocalHolds::release`]: out of line, since it is rare (a
/// task that alternates between primitives) and dropping an `Arc<dyn _>` is large.
#[cold]
#[inline(never)]
pub(super) fn drop_entry(entry: Option<HoldEntry>) {
    drop(entry);
}

/// What other contexts do to the owner's holds, under the body's lock.
#[derive(Default)]
pub(super) struct SharedHolds {
    /// Holds registered from elsewhere (a permit split in another task).
    pub(super) holds: Slab<HoldEntry>,
    /// Keys of local holds released elsewhere, for the owner to drop from its slab.
    pub(super) released_local: Vec<usize>,
}

/// Marks a ticket's slot as one in the record's shared slab.
pub(super) const SHARED_SLOT: usize = 1 << (usize::BITS - 1);
