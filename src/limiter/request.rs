//! The token of one request of the tower layer (`crate::tower`), kept apart from the
//! limiter's borrower set.
//!
//! Why not a `CapacityToken`: a token is reserved in `poll_ready`, by whatever task
//! drives the service, and only later does the request's own tracked scope exist to
//! answer for it. Naming the borrow and handing it over would take the borrower set's
//! lock twice per request; instead the reservation is a bare permit of the core
//! ([`Reserved`]), and the scope's first poll registers it to the scope in the scope's
//! own context ([`Reserved::hold_here`]: no lock), as any borrowed hold is. Its
//! abandonment goes through [`Requests`], which gives the core the hold and, if the
//! limiter reclaims, warns: a reclaimed request token is a request that panicked (or
//! leaked its scope's holds), worth a `WARN` where a reclaimed token of a plain
//! limiter is an `INFO`.

use std::sync::Arc;

#[cfg(feature = "tracing")]
use crate::core::AbandonPolicy;
use crate::core::{Hold, acquire_permits};
use crate::error::{AbandonReason, AcquireError};
use crate::owner::{Abandon, Abandoner, Caller, OrphanTag, Site};

use super::CapacityLimiter;

/// A limiter as the tower layer uses it: the limiter, and the primitive its request
/// holds are registered to.
pub(crate) struct Requests {
    limiter: CapacityLimiter,
}

impl Requests {
    pub(crate) fn new(limiter: CapacityLimiter) -> Arc<Self> {
        Arc::new(Requests { limiter })
    }

    pub(crate) fn limiter(&self) -> &CapacityLimiter {
        &self.limiter
    }

    /// Reserves one token for a request, waiting in FIFO order; nobody answers for it
    /// until [`Reserved::hold_here`].
    pub(crate) async fn reserve(self: Arc<Self>, site: Site) -> Result<Reserved, AcquireError> {
        acquire_permits!(self.limiter.inner.core, 1, Caller::Async, site);
        Ok(Reserved { requests: Some(self), site })
    }
}

impl Abandon for Requests {
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, site: Site) {
        let core = &self.limiter.inner.core;
        core.abandon(owner, reason, permits, site);
        #[cfg(feature = "tracing")]
        if core.policy() == AbandonPolicy::Reclaim {
            tracing::warn!(
                target: "ownsync",
                primitive = %crate::error::PrimitiveKind::CapacityLimiter,
                name = self.limiter.name(),
                owner = %owner.id,
                reason = %reason,
                "a request ({}) {reason} while holding its token of the tower layer's limiter: the token was reclaimed",
                owner.id,
            );
        }
    }

    // A request's hold is borrowed (it never moves), so its owner's exit never orphans
    // it; these keep the core's books right all the same.
    fn orphan(&self, owner: &Abandoner, permits: usize, site: Site, tag: OrphanTag) {
        self.limiter.inner.core.orphan(owner, permits, site, tag);
    }

    fn adopt_orphan(&self, tag: OrphanTag) {
        self.limiter.inner.core.adopt_orphan(tag);
    }
}

/// A token reserved for a request, not yet registered to anyone: dropping it gives the
/// token back.
pub(crate) struct Reserved {
    /// `None` once the token moved into a [`RequestHold`].
    requests: Option<Arc<Requests>>,
    site: Site,
}

impl Reserved {
    /// Registers the token to the current owner (the request's tracked scope, polled
    /// now), which answers for it from now on: its exit with it (a panic) reclaims or
    /// breaks the limiter.
    pub(crate) fn hold_here(mut self) -> RequestHold {
        let requests = self.requests.take().expect("a reserved token is held once");
        let hold = requests.limiter.inner.core.register(1, Caller::Async, &requests, false, self.site);
        RequestHold { requests, hold }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(requests) = &self.requests {
            requests.limiter.inner.core.release(1);
        }
    }
}

/// A request's token, registered to the request's tracked scope; dropping it gives the
/// token back (nothing, if the scope's exit abandoned it).
pub(crate) struct RequestHold {
    requests: Arc<Requests>,
    hold: Hold,
}

impl Drop for RequestHold {
    fn drop(&mut self) {
        let hold = std::mem::take(&mut self.hold);
        self.requests.limiter.inner.core.end_hold(hold, 1);
    }
}
