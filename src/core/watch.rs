//! What a core tells about itself: `statistics()` snapshots, `Debug` of a lock with data,
//! and the lazy warnings for self-waits, long waits and long holds (checked on the slow
//! path, never with a timer).

use std::sync::atomic::Ordering::Acquire;
#[cfg(feature = "tracing")]
use std::time::Duration;

use crate::clock::Stamp;
use crate::error::{BrokenResourceError, PrimitiveKind};
use crate::info::{HoldInfo, OrphanInfo, WaitInfo};
#[cfg(feature = "tracing")]
use crate::info::{ShowDuration, ShowSite};
use crate::owner::OwnerId;
#[cfg(feature = "tracing")]
use crate::owner::Site;

use super::{Abandonments, BROKEN, CLOSED, NOT_EXCLUSIVE, SHIFT, SemCore, Shared};

/// The accessors every primitive's statistics snapshot shares (a struct with a
/// `core: CoreSnapshot` field), so the three primitives report them alike.
macro_rules! common_statistics {
    ($stats:ty) => {
        impl $stats {
            /// How many waiters were queued.
            pub fn waiters(&self) -> usize {
                self.core.waiters
            }
            /// Why it is broken, if it is.
            pub fn broken(&self) -> Option<&crate::error::BrokenResourceError> {
                self.core.broken.as_ref()
            }
            /// Abandoned holds so far (broken or reclaimed) and the latest one.
            pub fn abandoned(&self) -> crate::core::Abandonments {
                self.core.abandoned
            }
            /// Owned holds (owned guards, permits, `'static` tokens) whose acquirer
            /// exited while they were still out, and that nobody has released or
            /// adopted since: they may be in use elsewhere, or leaked. They never break
            /// the primitive; hand them over to make their next owner answer for them.
            /// Counted by holds, not permits: an orphaned permit split in two is two
            /// orphans (each half answered for by nobody) until each is released,
            /// adopted or merged into another hold; two orphans merged are one. The
            /// permits of each are in [`Self::orphans`].
            pub fn orphaned(&self) -> usize {
                self.core.orphans.len()
            }
            /// The exclusive hold (a mutex's, a writer's), with its owner, site and how
            /// long it has been held; empty when there is none (counted holds are only
            /// counted here: see [`crate::info::HoldInfo`]).
            pub fn holds(&self) -> &[crate::info::HoldInfo] {
                &self.core.holds
            }
            /// The queued waiters in queue order, with their owners, sites, how long
            /// each has waited, and which are self-waits.
            pub fn waits(&self) -> &[crate::info::WaitInfo] {
                &self.core.waits
            }
            /// The orphaned owned holds (see [`Self::orphaned`]), with their acquirers
            /// and sites.
            pub fn orphans(&self) -> &[crate::info::OrphanInfo] {
                &self.core.orphans
            }
            /// Holds taken so far by tokio tasks that are not owners (no
            /// `ownsync::tokio::track_all` on their runtime, not spawned with
            /// `ownsync::tokio::spawn`, not in a `tracked` scope): nobody answers for
            /// them, so a leak of one hangs its waiters, as with tokio's primitives.
            /// Counted with the `tokio` feature only; a running total, not what is held
            /// now.
            pub fn anonymous_holds(&self) -> u64 {
                self.core.anonymous_holds
            }
        }
    };
}
pub(crate) use common_statistics;

/// A snapshot of the core for `statistics()`.
#[derive(Clone, Debug)]
pub(crate) struct CoreSnapshot {
    pub(crate) available: usize,
    pub(crate) waiters: usize,
    pub(crate) broken: Option<BrokenResourceError>,
    pub(crate) closed: bool,
    pub(crate) abandoned: Abandonments,
    pub(crate) orphans: Vec<OrphanInfo>,
    pub(crate) holder: Option<OwnerId>,
    pub(crate) holds: Vec<HoldInfo>,
    pub(crate) waits: Vec<WaitInfo>,
    /// Waiters that are the holder itself (a mutex only): a sibling sub-future of the
    /// holding task may still release, or this is a futurelock.
    pub(crate) self_waits: usize,
    pub(crate) anonymous_holds: u64,
    /// Sections cut short by a cancellation.
    pub(crate) cut_short: super::cut_short::CutShort,
}

/// What [`SemCore::overdue`] found, to report once the lock is released. Empty (and
/// free to pass around) without the `tracing` feature.
#[derive(Default)]
pub(super) struct Overdue {
    #[cfg(feature = "tracing")]
    self_waits: Vec<(Option<OwnerId>, Site, Duration)>,
    #[cfg(feature = "tracing")]
    waits: Vec<(Option<OwnerId>, Site, Duration, usize)>,
    /// The long exclusive hold, and how many wait for it.
    #[cfg(feature = "tracing")]
    hold: Option<(HoldInfo, usize)>,
}

impl SemCore {
    pub(crate) fn snapshot(&self) -> CoreSnapshot {
        let mut shared = self.shared.lock();
        self.stamp_hold(&mut shared, Stamp::now);
        let snapshot = self.snapshot_locked(&mut shared);
        let overdue = self.overdue(&mut shared);
        drop(shared);
        self.report(overdue);
        snapshot
    }

    /// The snapshot, taken under the lot's lock (`shared`).
    fn snapshot_locked(&self, shared: &mut Shared) -> CoreSnapshot {
        let state = self.state.load(Acquire);
        let holder = self.holder();
        let self_waits = holder.map_or(0, |holder| shared.queue.waiting_as(holder));
        let waits = shared
            .queue
            .waits()
            .map(|(permits, meta)| WaitInfo {
                owner: meta.owner(),
                permits,
                site: meta.site,
                waited_for: meta.since().elapsed(),
                self_wait: holder.is_some() && meta.owner() == holder,
                #[cfg(feature = "diagnostics")]
                holding: meta.holding.to_vec(),
            })
            .collect();
        CoreSnapshot {
            available: state >> SHIFT,
            waiters: shared.queue.len(),
            broken: shared.broken.clone(),
            closed: state & CLOSED != 0,
            abandoned: shared.abandoned,
            orphans: shared.orphans.clone(),
            holder,
            holds: self.exclusive_hold(shared, state).into_iter().collect(),
            waits,
            self_waits,
            anonymous_holds: self.anonymous.count(),
            cut_short: shared.cut_short,
        }
    }

    /// The exclusive hold, if there is one: its holder is recorded, or, for a mutex
    /// without a recorded holder (held anonymously), its one permit is out.
    pub(super) fn exclusive_hold(&self, shared: &Shared, state: usize) -> Option<HoldInfo> {
        let owner = self.holder();
        let held = owner.is_some() || (self.kind == PrimitiveKind::Mutex && state >> SHIFT == 0);
        if !held || state & BROKEN != 0 {
            return None;
        }
        Some(HoldInfo {
            owner,
            permits: self.exclusive,
            site: self.holder_site(),
            held_for: shared.hold_since.map(Stamp::elapsed),
        })
    }

    /// What lasted past the thresholds of [`crate::diagnostics`] and was not reported
    /// yet: self-waits, long waits, a long exclusive hold that others wait for. The lazy
    /// check, run wherever the slow path holds the lot's lock anyway: one load of each
    /// threshold when they are off (long waits are, by default), O(1) otherwise.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(super) fn overdue(&self, shared: &mut Shared) -> Option<Overdue> {
        #[cfg(feature = "tracing")]
        if shared.queue.has_self_waits() || crate::info::long_wait_warning().is_some() {
            return self.find_overdue(shared);
        }
        None
    }

    #[cfg(feature = "tracing")]
    #[cold]
    #[inline(never)]
    fn find_overdue(&self, shared: &mut Shared) -> Option<Overdue> {
        let mut overdue = Overdue::default();
        if let Some(threshold) = shared.queue.has_self_waits().then(crate::info::self_wait_warning).flatten()
        {
            overdue.self_waits = shared.queue.lasting_self_waits(threshold, self.holder());
        }
        if let Some(threshold) = crate::info::long_wait_warning() {
            overdue.waits = shared.queue.long_waits(threshold);
            if shared.hold_since.is_some_and(|since| !shared.hold_warned && since.elapsed() >= threshold) {
                shared.hold_warned = true;
                let state = self.state.load(Acquire);
                overdue.hold = self.exclusive_hold(shared, state).map(|hold| (hold, shared.queue.len()));
            }
        }
        let found = !overdue.self_waits.is_empty() || !overdue.waits.is_empty() || overdue.hold.is_some();
        found.then_some(overdue)
    }

    /// One `WARN` event (target `ownsync`) per overdue wait or hold. Call unlocked.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    #[inline]
    pub(super) fn report(&self, overdue: Option<Overdue>) {
        #[cfg(feature = "tracing")]
        if let Some(overdue) = overdue {
            self.report_overdue(overdue);
        }
    }

    #[cfg(feature = "tracing")]
    #[cold]
    fn report_overdue(&self, overdue: Overdue) {
        let (kind, name) = (self.kind, self.name.as_deref());
        let show = |owner: Option<OwnerId>| {
            owner.map_or_else(|| "an anonymous waiter".to_owned(), |o| o.to_string())
        };
        // Every event names the primitive, the owner and the site; the rest is its own.
        macro_rules! warn_about {
            ($owner:expr, $site:expr, $($rest:tt)*) => {
                tracing::warn!(target: "ownsync", primitive = %kind, name, owner = %$owner, site = %$site, $($rest)*)
            };
        }
        for (owner, site, waited, permits) in overdue.waits {
            let (owner, site) = (show(owner), ShowSite(site));
            warn_about!(
                owner,
                site,
                permits,
                waited_ms = waited.as_millis() as u64,
                "{kind} long wait: {owner} has waited {} (since {site})",
                ShowDuration(waited)
            );
        }
        if let Some((hold, waiters)) = overdue.hold {
            let (owner, site) = (show(hold.owner), ShowSite(hold.site));
            let held = hold.held_for.unwrap_or_default();
            warn_about!(
                owner,
                site,
                waiters,
                held_ms = held.as_millis() as u64,
                "{kind} long hold: {owner} has held it for at least {} (taken at {site}), \
                 with {waiters} waiting",
                ShowDuration(held)
            );
        }
        let held_at = ShowSite(self.holder_site());
        for (owner, site, waited) in overdue.self_waits {
            let (owner, site) = (show(owner), ShowSite(site));
            warn_about!(
                owner,
                site,
                held_at = %held_at,
                waited_ms = waited.as_millis() as u64,
                "{kind} self-wait: {owner} has waited {} at {site} for a hold it owns itself \
                 (taken at {held_at}); fine if a sibling sub-future of {owner} releases it, a \
                 deadlock (futurelock) if none will",
                ShowDuration(waited)
            );
        }
    }

    /// Stamps the exclusive hold as held at least since `now()` (read only if it
    /// stamps), if it has no stamp yet and someone waits for it (see
    /// [`Shared::hold_since`]).
    #[inline]
    pub(super) fn stamp_hold(&self, shared: &mut Shared, now: impl FnOnce() -> Stamp) {
        if self.exclusive != NOT_EXCLUSIVE && shared.hold_since.is_none() && !shared.queue.is_empty() {
            shared.hold_since = Some(now());
            shared.hold_warned = false;
        }
    }
}
