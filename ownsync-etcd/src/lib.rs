//! A limiter and a mutex shared by a fleet of processes, on etcd, that know who holds
//! them.
//!
//! The in-process primitives of [`ownsync`] break, naming the holder, when a holder
//! goes away without giving its hold back, instead of letting every waiter hang or
//! silently reclaiming what the holder may have left half-done. This crate keeps those
//! semantics across processes. A [`Session`] is one process's etcd lease, kept alive in
//! the background. A [`FleetLimiter`] ([`Session::limiter`], [`Session::mutex`]) grants
//! tokens first come, first served across the fleet; a holder whose lease expires (its
//! process was killed, paused or cut off past the lease's time to live) or whose
//! tracked task ends with the token leaked breaks the limiter for every waiter in every
//! process, naming its process, lease, task and acquire site, or, under
//! [`AbandonPolicy::Reclaim`](ownsync::AbandonPolicy::Reclaim), gives its token back.
//! Every token carries a fencing token ([`FleetToken::fence`]) and builds writes that
//! etcd refuses once the token is lost ([`FleetToken::fenced`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use ownsync::AbandonPolicy;
//! use ownsync_etcd::{FleetError, Session};
//!
//! # async fn demo() -> Result<(), FleetError> {
//! let session = Session::connect(&["http://127.0.0.1:2379"], Duration::from_secs(5)).await?;
//! let downstream = session.limiter("downstream", 2, AbandonPolicy::Break);
//! match downstream.acquire().await {
//!     Ok(token) => {
//!         // ... call the downstream service ...
//!         token.release().await?;
//!     }
//!     Err(FleetError::Broken(err)) => eprintln!("{err}"), // names the dead holder
//!     Err(other) => return Err(other),
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
mod fence;
mod keys;
mod limiter;
mod session;

pub use error::{FleetBrokenError, FleetError};
pub use fence::Fence;
pub use limiter::{FleetLimiter, FleetStatistics, FleetToken};
pub use session::Session;
