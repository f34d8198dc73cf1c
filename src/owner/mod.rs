//! Who holds what, and what happens when they go away.
//!
//! An owner is a tracked task or a thread. Each owner has one record: its id, whether
//! (and how) it exited, and the holds registered to it. A hold is registered only when
//! its owner is known; anonymous holds (an async acquire outside any tracked task) pay
//! nothing for tracking. When the owner exits, it claims every hold still registered
//! and hands each to its primitive's [`Abandon`] hook, which breaks the primitive (or
//! reclaims the hold, per policy) and wakes every waiter.
//!
//! Tracking must be nearly free where it is common: a task that locks and unlocks within
//! its own polls. So the record keeps two lists. Holds taken and given back in the
//! owner's own context (its polls, or its thread) live in a local slab that only that
//! context touches: no lock, no atomic, and no reference count (a hold's ticket points
//! at the record without owning it; see [`HoldTicket`]). What another context does to a
//! hold (a guard dropped in another task, a permit split there) goes through the
//! record's locks. The exit, in the owner's context, takes them once, so a release
//! elsewhere racing the exit is decided exactly once: either the release wins and the
//! hold returns normally, or the exit wins and the release becomes a no-op.
//!
//! A hold can outlive its owner for good (a guard leaked with `mem::forget`), so the
//! exit frees all the record but its head, one word (see [`OwnerInner`]): a leaking
//! server loses 24 bytes of heap per leaked hold, not its owners' records.
//!
//! Lock order: a primitive's lot lock may be held while an owner record's locks are
//! taken (its stripe, then its body's lock), never the other way round (`exit` drops
//! them before calling `abandon`), and no code holds two records' locks at once.

mod abandon;
mod current;
mod cut_short;
mod handover;

mod record;
mod scope;
mod slabs;
#[cfg(test)]
mod tests;
mod ticket;

pub use crate::id::OwnerId;
pub(crate) use crate::id::{Site, caller_site};
pub(crate) use abandon::{Abandon, Abandoner, OrphanSplit, OrphanTag};
pub use current::current_owner;
#[cfg(feature = "diagnostics")]
pub(crate) use current::holds_of_current;
#[cfg(test)]
pub(crate) use current::live_holds_of_current;
pub(crate) use current::{
    Caller, CurrentTaskScope, current_abandoner, identity_for, owner_id_for, register_hold,
};
#[cfg(feature = "diagnostics")]
pub(crate) use handover::published_shared_holds;
pub(crate) use handover::{HandedOver, OwnerGone, can_exit, hand_over, is_live_owner, register_to};
pub(crate) use record::OwnerInner;
pub(crate) use ticket::{Claim, HoldTicket};
