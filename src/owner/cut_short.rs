//! Which holds a cancellation cuts short.
//!
//! A tracked owner dropped before it finished (a cancellation) drops its future, and
//! with it the guards that future still has. Before that drop, this module lists the
//! holds the owner *certainly* owns at that moment, the borrowed ones (never an owned
//! hold, which may have moved: rule C2 of the hold lifecycle), its own and those of the
//! completed scopes passed to it, and arms each at its primitive: a lock then takes the
//! drop of that very hold for a section cut short (see `sem::cut_short`). Holds released
//! before the cancellation are not registered any more, so they are never listed.

use std::sync::Arc;

use super::abandon::{Abandon, OrphanTag};
use super::record::OwnerInner;
use super::scope::forwarded_scope;
use super::slabs::SHARED_SLOT;

/// The holds armed by one cancellation; dropping it disarms those whose drop did not
/// come (a guard moved elsewhere or leaked: the owner's exit settles it).
pub(crate) struct ArmedSections(Vec<(Arc<dyn Abandon>, OrphanTag)>);

impl Drop for ArmedSections {
    fn drop(&mut self) {
        for (primitive, tag) in self.0.drain(..) {
            primitive.disarm_cut_short(tag);
        }
    }
}

impl OwnerInner {
    /// Arms every certainly owned hold of this owner, which is being cancelled. In the
    /// owner's context, before its future is dropped.
    pub(crate) fn arm_cut_short(&self) -> ArmedSections {
        let mut found = Vec::new();
        self.certainly_owned_holds(&mut found);
        if found.is_empty() {
            return ArmedSections(Vec::new());
        }
        // SAFETY: in the owner's context (the caller's contract).
        let owner = unsafe { self.id_here() };
        // No record lock is held here: a primitive's lot lock comes first in the order.
        let armed = found
            .into_iter()
            .filter(|(primitive, tag, permits)| primitive.arm_cut_short(*tag, *permits, owner))
            .map(|(primitive, tag, _)| (primitive, tag))
            .collect();
        ArmedSections(armed)
    }

    /// Appends the borrowed holds registered to this record, and to the completed scopes
    /// forwarded to it, with their tags (as [`HoldTicket::orphan_tag`](super::HoldTicket::orphan_tag)
    /// names them) and permits. In this record's context (a forwarded scope's is its
    /// enclosing owner's).
    fn certainly_owned_holds(&self, out: &mut Vec<(Arc<dyn Abandon>, OrphanTag, usize)>) {
        // SAFETY: in this record's context (see above), so its body lives while we read.
        let Ok(body) = (unsafe { self.body() }) else { return };
        let record = std::ptr::from_ref(self) as usize;
        let mut scopes: Vec<Arc<dyn Abandon>> = Vec::new();
        // SAFETY: in the record's context; the closure only clones `Arc`s under the
        // body's lock, and calls no primitive.
        unsafe {
            body.with_local(|local| {
                let shared = body.shared.lock();
                for (key, entry) in &local.holds {
                    if Some(key) == local.spare || entry.moves || shared.released_local.contains(&key) {
                        continue;
                    }
                    if entry.primitive.as_forwarded_scope().is_some() {
                        scopes.push(entry.primitive.clone());
                    } else {
                        out.push((entry.primitive.clone(), (record, key), entry.permits));
                    }
                }
                for (key, entry) in shared.holds.iter().filter(|(_, entry)| !entry.moves) {
                    out.push((entry.primitive.clone(), (record, key | SHARED_SLOT), entry.permits));
                }
            });
        }
        for scope in &scopes {
            if let Some(scope) = forwarded_scope(&**scope) {
                scope.record.certainly_owned_holds(out);
            }
        }
    }
}

/// The walk above reaches the local slab, the shared slab and a forwarded scope's slab
/// through `unsafe` accessors: driven here so that Miri checks them.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use crate::{Mutex, tracked, tracked_with};

    #[test]
    fn a_cancellation_arms_local_shared_and_forwarded_holds_and_counts_each_once() {
        let local = Mutex::new(0);
        let forwarded = Mutex::new(0);
        let shared = Arc::new(Mutex::new(0));
        let released_first = Mutex::new(0);
        // Handed to the task from outside its context: registered in its shared slab.
        let handed = shared.clone().try_lock_owned().unwrap();
        let task = tracked_with(handed, |handed| async {
            let _handed = handed;
            let _local = local.lock().await.unwrap();
            let _forwarded = tracked(async { forwarded.lock().await.unwrap() }).await;
            drop(released_first.lock().await.unwrap());
            std::future::pending::<()>().await;
        });
        let id = task.owner();
        assert!(task.now_or_never().is_none());
        for mutex in [&local, &forwarded, &*shared] {
            let cut_short = mutex.statistics().cut_short();
            assert_eq!((cut_short.count(), cut_short.last().map(|(owner, _)| owner)), (1, Some(id)));
            assert!(!mutex.is_broken());
            assert!(mutex.try_lock().is_ok());
        }
        assert_eq!(released_first.statistics().cut_short().count(), 0);
    }
}
