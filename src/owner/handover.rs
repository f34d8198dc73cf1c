//! Owners found by id: a hold handed to another owner, a token borrowed on a live
//! owner's behalf.

use std::sync::Arc;
#[cfg(feature = "diagnostics")]
use std::sync::Weak;

use crate::error::HandOverError;

use super::abandon::Abandon;
use super::record::{OwnerInner, REGISTRY, RecordRef, current_context_ptr};
use super::ticket::{Claim, HoldTicket};
use crate::id::{ANONYMOUS_BIT, OwnerId, RUNTIME_BIT, Site};

/// Every hold registered from another context (a hand-over, `tracked_with`, a token
/// borrowed on an owner's behalf) to a published live owner ([`OwnerInner::publish`]):
/// the holds a snapshot can read without being in their owner's context, since they are
/// in the record's shared slab, behind its locks (feature `diagnostics`). Slow, for
/// diagnostics: every published record's stripe and body lock, one record at a time.
#[cfg(feature = "diagnostics")]
pub(crate) fn published_shared_holds() -> Vec<(OwnerId, crate::info::Held)> {
    // The table's lock is a leaf: the records are collected first, and read after it.
    let records: Vec<Arc<OwnerInner>> = {
        let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.as_ref().map(|map| map.values().filter_map(Weak::upgrade).collect()).unwrap_or_default()
    };
    let mut found = Vec::new();
    for record in &records {
        record.with_body(|body| {
            let Ok(body) = body else { return };
            let shared = body.shared.lock();
            let holds =
                shared.holds.iter().filter(|(_, entry)| entry.primitive.as_forwarded_scope().is_none());
            found.extend(holds.map(|(_, entry)| {
                let identity = Arc::as_ptr(&entry.primitive).cast::<()>() as usize;
                (body.id, crate::info::Held { identity, permits: entry.permits, site: entry.site })
            }));
        });
    }
    // A record's last count may go here (its owner exited meanwhile): no lock is held.
    drop(records);
    found
}

/// The record of a live owner with this id: the owner whose context the code running
/// now is in, or a published one ([`OwnerInner::publish`]). `None` for an owner that
/// has exited, an id that names no owner (anonymous borrowers, runtime task ids), or an
/// id that was never given out.
pub(super) fn live_record(id: OwnerId) -> Option<Arc<OwnerInner>> {
    let here = current_context_ptr();
    if !here.is_null() {
        // SAFETY: a non-null context pointer comes from `Arc::as_ptr` of a record kept
        // alive by its `Tracked` or its thread-local while the code running now is in
        // its context, which lasts through this call.
        let record = unsafe { RecordRef::from_raw(here) };
        // SAFETY: its context, as above.
        if unsafe { record.id_here() } == id {
            return Some(record.to_arc());
        }
    }
    let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    registry.as_ref()?.get(&id.0)?.upgrade()
}

/// Registers a hold of `permits` as certainly owned by the live owner `id` (a hand-over,
/// or a token borrowed on its behalf). `Err` if no such owner is alive.
pub(crate) fn register_to(
    id: OwnerId,
    primitive: Arc<dyn Abandon>,
    permits: usize,
    site: Site,
) -> Result<HoldTicket, OwnerGone> {
    let record = live_record(id).ok_or(OwnerGone(id))?;
    RecordRef::of(&record).register(primitive, permits, false, site).map_err(|_| OwnerGone(id))
}

/// What [`hand_over`] did with a hold's registration.
pub(crate) enum HandedOver {
    /// Registered to the target now.
    To(HoldTicket),
    /// The target is not a live owner: the hold's registration is as it was (the same
    /// owner, a dead ticket if that owner exited meanwhile and so abandoned it, or none).
    TargetGone(Option<HoldTicket>),
    /// The previous owner's exit had already abandoned the hold: its dead ticket.
    Abandoned(HoldTicket),
}

/// Re-registers a hold of `permits` (registered with `previous`, or anonymous) to the
/// live owner `target`, as certainly owned.
///
/// The hold is never registered to two owners at once: two exits could then both
/// abandon the same permits (a double reclaim). So the old registration is given back
/// first, then the new one made. An exit of the old owner in between finds nothing of
/// the hold (linearized after the hand-over); an exit of the target before it is
/// registered fails the hand-over, and the hold goes back to its old owner, or, if that
/// owner exited in between too, is abandoned here in its name, exactly once.
pub(crate) fn hand_over(
    previous: Option<HoldTicket>,
    target: OwnerId,
    permits: usize,
    primitive: &dyn Fn() -> Arc<dyn Abandon>,
    fallback_site: Site,
) -> HandedOver {
    if previous.as_ref().is_some_and(|ticket| !ticket.is_live()) {
        return HandedOver::Abandoned(previous.expect("just matched"));
    }
    let Some(target_record) = live_record(target) else { return HandedOver::TargetGone(previous) };
    // The old owner, kept alive past the give-back in case the hold must go back to it.
    let mut old = None;
    let site = previous.as_ref().and_then(HoldTicket::site).or(fallback_site);
    if let Some(mut ticket) = previous {
        let (record, moves, tag) = (ticket.record().to_arc(), ticket.moves(), ticket.orphan_tag());
        match ticket.give_back() {
            Claim::Ours => old = Some((record, moves)),
            // Anonymous from now on (its acquirer is gone): nothing to go back to.
            Claim::Orphaned => primitive().adopt_orphan(tag),
            Claim::Abandoned => return HandedOver::Abandoned(ticket),
        }
    }
    if let Ok(ticket) = RecordRef::of(&target_record).register(primitive(), permits, false, site) {
        return HandedOver::To(ticket);
    }
    let Some((old, moves)) = old else { return HandedOver::TargetGone(None) };
    match RecordRef::of(&old).register(primitive(), permits, moves, site) {
        Ok(ticket) => HandedOver::TargetGone(Some(ticket)),
        // Owned (moving) holds are orphaned, not abandoned, by an exit: it stays ours,
        // anonymous.
        Err(_) if moves => HandedOver::TargetGone(None),
        Err(reason) => {
            primitive().abandon_hold(&old.abandoner(), reason, permits, site, None);
            HandedOver::TargetGone(Some(HoldTicket::dead()))
        }
    }
}

/// Whether `id` names a live owner (see [`live_record`]).
pub(crate) fn is_live_owner(id: OwnerId) -> bool {
    live_record(id).is_some_and(|record| !record.has_exited())
}

/// No live owner has this id (see [`live_record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OwnerGone(pub(crate) OwnerId);

/// Whether `id` names an owner that exits: a tracked task or a thread, as opposed to an
/// anonymous borrower or a runtime task id.
pub(crate) fn can_exit(id: OwnerId) -> bool {
    id.0 & (RUNTIME_BIT | ANONYMOUS_BIT) == 0 || id.is_thread()
}

impl From<OwnerGone> for HandOverError {
    fn from(OwnerGone(id): OwnerGone) -> Self {
        HandOverError::OwnerGone(id)
    }
}
