//! A completed nested scope, forwarded to the owner that polled it: its holds are that
//! owner's from then on, and that owner's exit decides.

use std::sync::Arc;

use super::abandon::{Abandon, Abandoner, OrphanTag};
use super::id::{OwnerId, Site};
use super::record::OwnerInner;
use super::ticket::{HoldTicket, RecordRef};
use crate::error::AbandonReason;
use crate::loom::Mutex;

/// A completed nested scope's record, registered as one hold of the owner that polled
/// it (see [`OwnerInner::complete`]).
pub(crate) struct ForwardedScope {
    pub(super) record: Arc<OwnerInner>,
    /// Its registration to the enclosing owner, given back when it is abandoned or pruned.
    pub(super) ticket: Mutex<Option<HoldTicket>>,
}

impl ForwardedScope {
    /// Lets go of the forwarded scopes registered to `owner` whose holds were all
    /// released, at every depth: a forwarded scope's own spent forwards go first, so
    /// that one which holds nothing else is spent too. In `owner`'s context (a completed
    /// scope's is its enclosing owner's: see [`OwnerInner::complete`]).
    pub(super) fn prune_spent(owner: RecordRef<'_>) {
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
