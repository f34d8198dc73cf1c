//! Anonymous holds taken in runtime tasks: counted, and reported once per site.
//!
//! A hold taken by async code outside any owner is anonymous: nobody answers for it, so
//! a leak of it hangs its waiters exactly as with tokio's primitives. Outside a runtime
//! task that is expected (a `block_on` future, another executor without tracking); inside
//! a tokio task it means the program missed the one line that would protect it
//! (`ownsync::tokio::track_all`), or spawned without `ownsync::tokio::spawn`/`tracked`.
//! Nothing tells such a program otherwise, so each primitive counts these holds (its
//! `statistics()`, the diagnostics snapshot), and with the `tracing` feature the first one
//! taken at each call site is reported. Without the `tokio` feature no task is known, and
//! this is all compiled out.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::PrimitiveKind;
use crate::owner::Site;

/// How many holds a primitive gave to untracked runtime tasks.
#[derive(Default)]
pub(crate) struct AnonymousHolds(AtomicU64);

impl AnonymousHolds {
    /// A hold of `kind` was just taken at `site` with no owner: counted (and reported,
    /// the first time at this site) if the code running now is a runtime task.
    #[inline]
    pub(crate) fn note(&self, kind: PrimitiveKind, name: Option<&str>, site: Site) {
        if crate::runtime::in_runtime_task() {
            self.note_in_task(kind, name, site, false);
        }
    }

    /// [`note`](Self::note) for a caller that knows it runs in a runtime task (it read
    /// the task's id already). An `exclusive` hold (a mutex's, a writer's) excludes
    /// every other hold of its primitive, so nobody else counts while it does, and the
    /// primitive's own acquire and release order its count after every earlier one: a
    /// plain load and store count it, without the read-modify-write (an atomic
    /// instruction on the uncontended path of every lock in a tokio task). Shared holds
    /// may count at the same time, and add.
    #[inline]
    pub(crate) fn note_in_task(&self, kind: PrimitiveKind, name: Option<&str>, site: Site, exclusive: bool) {
        if exclusive {
            self.0.store(self.0.load(Relaxed) + 1, Relaxed);
        } else {
            self.0.fetch_add(1, Relaxed);
        }
        report_once(kind, name, site);
    }

    /// Holds taken so far by untracked runtime tasks.
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The message of the event, also used by the tests.
#[cfg(feature = "tracing")]
const MESSAGE: &str =
    "anonymous hold: abandonment cannot be detected here; use track_all, ownsync::tokio::spawn or tracked";

#[cfg(feature = "tracing")]
#[cold]
fn report_once(kind: PrimitiveKind, name: Option<&str>, site: Site) {
    if sites::first_time(site) {
        tracing::warn!(
            target: "ownsync",
            primitive = %kind,
            name,
            site = %crate::info::ShowSite(site),
            "{kind} {MESSAGE} (taken in an untracked tokio task at {})",
            crate::info::ShowSite(site)
        );
    }
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
fn report_once(_: PrimitiveKind, _: Option<&str>, _: Site) {}

/// The call sites reported so far: a small open-addressed table of `Location` pointers,
/// read without a lock (a site already reported costs a few loads). Once it is full,
/// new sites are no longer reported (they are still counted).
#[cfg(feature = "tracing")]
mod sites {
    use std::sync::atomic::AtomicPtr;
    use std::sync::atomic::Ordering::{AcqRel, Acquire};

    use crate::owner::Site;

    const SLOTS: usize = 512;
    /// Where an unknown site (`None`) is recorded: any non-null address that no
    /// `Location` has.
    const UNKNOWN: *mut std::panic::Location<'static> = std::ptr::dangling_mut();

    static SEEN: [AtomicPtr<std::panic::Location<'static>>; SLOTS] =
        [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

    /// Whether `site` is reported for the first time (then it is recorded).
    pub(super) fn first_time(site: Site) -> bool {
        let key = site.map_or(UNKNOWN, |site| std::ptr::from_ref(site).cast_mut());
        let start = (key as usize >> 3).wrapping_mul(0x9E37_79B9) % SLOTS;
        for step in 0..SLOTS {
            let slot = &SEEN[(start + step) % SLOTS];
            let seen = slot.load(Acquire);
            if seen == key {
                return false;
            }
            if seen.is_null() {
                match slot.compare_exchange(std::ptr::null_mut(), key, AcqRel, Acquire) {
                    Ok(_) => return true,
                    Err(now) if now == key => return false,
                    Err(_) => continue,
                }
            }
        }
        false
    }
}
