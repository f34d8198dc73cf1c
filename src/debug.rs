//! `Debug` of the primitives and of their statistics, written by hand.
//!
//! Why by hand: a `Debug` is what ends up in a log line or a panic message when a
//! service hangs, so it must say what a person needs there (who holds it, where it was
//! taken and since when; who broke it, why and where) and nothing of the crate's own
//! bookkeeping: no private type's name, no internal counters.

use std::fmt;

use crate::core::{CoreSnapshot, SemCore};
use crate::error::BrokenResourceError;
use crate::info::{HoldInfo, OrphanInfo, ShowDuration, ShowSite};
use crate::owner::Caller;

/// `Debug` of a lock with data (a mutex, an RwLock): its name, the data if it can be
/// peeked at now, the holder (`holder_label`) with its site and how long it has been
/// held, and waiters, self-waits and orphans when there are any. A broken lock says who
/// broke it, why, and where the abandoned hold was taken, instead of a holder.
pub(crate) fn debug_lock<T: ?Sized + fmt::Debug>(
    core: &SemCore,
    f: &mut fmt::Formatter<'_>,
    type_name: &str,
    data: *const T,
    holder_label: &str,
) -> fmt::Result {
    let mut out = f.debug_struct(type_name);
    if let Some(name) = core.name() {
        out.field("name", &name);
    }
    // Peek with one bare permit (no owner registration, no panic handling), so that
    // formatting a lock, even from a panic message, has no side effect. The permit goes
    // back through a guard: a `T::fmt` that panics must not keep the lock.
    if core.is_broken() {
        out.field("data", &format_args!("<broken>"));
    } else if core.try_acquire(1, Caller::Async).is_ok() {
        struct GiveBack<'a>(&'a SemCore);
        impl Drop for GiveBack<'_> {
            fn drop(&mut self) {
                self.0.release(1);
            }
        }
        let _peek = GiveBack(core);
        // SAFETY: we hold a permit until `_peek` drops, which excludes every exclusive
        // (writing) guard; `data` is the lock's own data.
        out.field("data", &unsafe { &*data });
    } else {
        out.field("data", &format_args!("<locked>"));
    }
    let snapshot = core.snapshot();
    if let Some(broken) = &snapshot.broken {
        broken_fields(&mut out, broken);
    } else {
        out.field(holder_label, &snapshot.holder);
        if let Some(hold) = snapshot.holds.first() {
            if hold.site.is_some() {
                out.field("taken_at", &format_args!("{}", ShowSite(hold.site)));
            }
            if let Some(held) = hold.held_for {
                out.field("held_for", &format_args!(">={}", ShowDuration(held)));
            }
        }
    }
    if snapshot.waiters > 0 {
        out.field("waiters", &snapshot.waiters);
    }
    if snapshot.self_waits > 0 {
        out.field("self_waits", &snapshot.self_waits);
    }
    if !snapshot.orphans.is_empty() {
        out.field("orphaned", &snapshot.orphans.len());
    }
    if snapshot.cut_short.count() > 0 {
        out.field("cut_short", &snapshot.cut_short.count());
    }
    out.finish()
}

/// Who broke a primitive, why, and where the abandoned hold was taken.
pub(crate) fn broken_fields(out: &mut fmt::DebugStruct<'_, '_>, broken: &BrokenResourceError) {
    out.field("broken_by", &broken.owner()).field("reason", &broken.reason());
    if broken.site().is_some() {
        out.field("taken_at", &format_args!("{}", ShowSite(broken.site())));
    }
}

/// A list of holds as people read it: `[task#3 at src/pool.rs:12:5 for >=1.2s, ...]`.
pub(crate) struct ShowHolds<'a>(pub(crate) &'a [HoldInfo]);

impl fmt::Debug for ShowHolds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(ShowHold)).finish()
    }
}

/// One hold: `task#3 (2 permits) at src/pool.rs:12:5 for >=1.2s`.
pub(crate) struct ShowHold<'a>(pub(crate) &'a HoldInfo);

impl fmt::Debug for ShowHold<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ShowHold<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hold = self.0;
        match hold.owner {
            Some(owner) => write!(f, "{owner}")?,
            None => f.write_str("anonymous")?,
        }
        if hold.permits != 1 {
            write!(f, " ({} permits)", hold.permits)?;
        }
        write!(f, " at {}", ShowSite(hold.site))?;
        if let Some(held) = hold.held_for {
            write!(f, " for >={}", ShowDuration(held))?;
        }
        Ok(())
    }
}

/// Orphaned holds: `[2 permits taken at src/pool.rs:12:5 by task#3, which exited]`.
pub(crate) struct ShowOrphans<'a>(pub(crate) &'a [OrphanInfo]);

impl fmt::Debug for ShowOrphans<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(ShowOrphan)).finish()
    }
}

struct ShowOrphan<'a>(&'a OrphanInfo);

impl fmt::Debug for ShowOrphan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let orphan = self.0;
        write!(
            f,
            "{} permit(s) taken at {} by {}, which exited",
            orphan.permits,
            ShowSite(orphan.site),
            orphan.acquirer
        )
    }
}

/// The fields every statistics type shares, from its core's snapshot, for a `Debug`
/// that names no private type.
pub(crate) fn core_fields(out: &mut fmt::DebugStruct<'_, '_>, core: &CoreSnapshot) {
    out.field("available", &core.available)
        .field("waiters", &core.waiters)
        .field("holds", &core.holds)
        .field("waits", &core.waits)
        .field("orphans", &core.orphans)
        .field("abandoned", &core.abandoned)
        .field("closed", &core.closed)
        .field("broken", &core.broken)
        .field("anonymous_holds", &core.anonymous_holds);
}
