//! What an owner tells a primitive when it goes away holding some of it ([`Abandon`]),
//! and who it names ([`Abandoner`]).

use std::any::Any;
use std::sync::Arc;

use crate::error::AbandonReason;

use crate::id::{OwnerId, Site};

/// Who abandoned a hold: what a broken primitive's error and the events name.
pub(crate) struct Abandoner {
    pub(crate) id: OwnerId,
    /// A thread's name, kept so errors can name a thread after it ended.
    pub(crate) name: Option<Arc<str>>,
}

/// What a primitive does when an owner goes away holding something of it.
pub(crate) trait Abandon: Send + Sync {
    /// `owner` went away (`reason`) while certainly holding `permits` of this primitive,
    /// taken at `site`.
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, site: Site);
    /// [`abandon`](Self::abandon) of one hold, named: `Some(tag)` for the hold whose ticket
    /// has that [`HoldTicket::orphan_tag`](super::ticket::HoldTicket::orphan_tag) (an exit
    /// claimed it: `owner` may be an enclosing owner, not the record the ticket names),
    /// `None` for a hold no ticket names (a hand-over found both owners gone: the caller,
    /// which holds the hold, runs under its primitive's locks). A primitive that keeps its
    /// holds in a set of its own (a limiter's borrowers) finds the entry by the tag, and
    /// takes no lock of its own for `None`.
    fn abandon_hold(
        &self,
        owner: &Abandoner,
        reason: AbandonReason,
        permits: usize,
        site: Site,
        hold: Option<OrphanTag>,
    ) {
        let _ = hold;
        self.abandon(owner, reason, permits, site);
    }
    /// `owner` went away while an owned hold it acquired, and that may have moved,
    /// was still registered to it: no evidence of abandonment, so it is
    /// only counted as orphaned until it is released or adopted ([`Claim::Orphaned`](super::ticket::Claim::Orphaned)).
    fn orphan(&self, owner: &Abandoner, permits: usize, site: Site, tag: OrphanTag);
    /// The orphaned hold `tag` (see [`HoldTicket::orphan_tag`](super::ticket::HoldTicket::orphan_tag)) was released or adopted.
    fn adopt_orphan(&self, tag: OrphanTag);
    /// An orphaned hold was split (see [`OrphanSplit`]): both halves stay orphans.
    fn split_orphan(&self, split: OrphanSplit) {
        let _ = split;
    }
    /// The orphaned hold `tag` has `permits` now (another hold was merged into it).
    fn resize_orphan(&self, tag: OrphanTag, permits: usize) {
        let _ = (tag, permits);
    }
    /// `owner` is being cancelled with the hold `tag` of `permits` registered to it: if
    /// that is an exclusive hold of a lock, the next drop of it is a section cut short
    /// (see `core/cut_short.rs`). Whether it was armed; only a lock arms.
    fn arm_cut_short(&self, tag: OrphanTag, permits: usize, owner: OwnerId) -> bool {
        let _ = (tag, permits, owner);
        false
    }
    /// The cancellation that armed `tag` is over.
    fn disarm_cut_short(&self, tag: OrphanTag) {
        let _ = tag;
    }
    /// The completed nested scope this entry stands for, if it is one (a
    /// `ForwardedScope`: see `scope.rs`); every primitive answers `None`. As `Any`, so
    /// that this trait, below the scopes, need not name their type.
    fn as_forwarded_scope(&self) -> Option<&dyn Any> {
        None
    }
    /// A hold of this primitive registered to the nested scope `from` now belongs to
    /// `to`, the scope that polled it (see [`OwnerInner::complete`](super::record::OwnerInner::complete)): if `from` is the
    /// recorded holder, `to` is from now on. Only a primitive that records its holder
    /// does anything.
    fn forward_holder(&self, from: OwnerId, to: OwnerId) {
        let _ = (from, to);
    }
}

/// Names an orphaned hold: see [`HoldTicket::orphan_tag`](super::ticket::HoldTicket::orphan_tag).
pub(crate) type OrphanTag = (usize, usize);

/// An orphaned hold `tag` split in two ([`Abandon::split_orphan`]): it keeps `kept`
/// permits, and the orphan `piece` ([`HoldTicket::orphan_piece`](super::ticket::HoldTicket::orphan_piece)) has the `taken`
/// others; `acquirer` is the exited owner both were registered to.
pub(crate) struct OrphanSplit {
    pub(crate) tag: OrphanTag,
    pub(crate) kept: usize,
    pub(crate) piece: OrphanTag,
    pub(crate) taken: usize,
    pub(crate) acquirer: OwnerId,
}
