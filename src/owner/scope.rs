//! A completed nested scope, forwarded to the owner that polled it: its holds are that
//! owner's from then on, and that owner's exit decides.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::AbandonReason;
use crate::loom::Mutex;

use super::abandon::{Abandon, Abandoner, OrphanTag};
use super::record::{OwnerInner, RecordRef, unpublish};
use super::ticket::HoldTicket;
use crate::id::{OwnerId, Site};

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
                    .filter(|(_, entry)| forwarded_scope(&*entry.primitive).is_some())
                    .map(|(_, entry)| entry.primitive.clone())
                    .collect()
            })
        }
        .unwrap_or_default();
        for entry in forwarded {
            let Some(scope) = forwarded_scope(&*entry) else { continue };
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

/// The forwarded scope an owner's hold entry stands for, if it is one.
pub(super) fn forwarded_scope(entry: &dyn Abandon) -> Option<&ForwardedScope> {
    entry.as_forwarded_scope().and_then(<dyn Any>::downcast_ref)
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
    fn as_forwarded_scope(&self) -> Option<&dyn Any> {
        Some(self)
    }
    fn forward_holder(&self, from: OwnerId, to: OwnerId) {
        // The scope's holds were passed on to `from` (its enclosing owner, completing
        // now), and recorded as held by it then.
        self.record.forward_holders(from, to);
    }
}

impl OwnerInner {
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
