#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]
// On docs.rs (`--cfg docsrs`): a badge names the feature each gated item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod anonymous;
mod block;
mod clock;
mod condition;
mod core;
mod debug;
pub mod diagnostics;
mod error;
mod event;
mod external;
mod guard;
mod hooks;
mod id;
mod info;
mod limiter;
mod loom;
mod lot;
mod mutex;
mod notify;
mod owner;
mod repair;
mod runtime;
mod rwlock;
mod section;
mod semaphore;
#[cfg(feature = "diagnostics")]
mod snapshot;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod tracked;
mod wake;
#[cfg(feature = "diagnostics")]
mod watchdog;

pub use crate::core::{AbandonPolicy, Abandonments, CutShort};
pub use condition::{Condition, ConditionStatistics, ConditionWait};
pub use error::{
    AbandonReason, AcquireError, BrokenResourceError, HandOverError, PrimitiveKind, ReleaseError,
    RepairError, TryAcquireError, TryLockError,
};
pub use event::{Event, EventStatistics};
pub use external::{ExternalAbandonment, ExternalHold, OwnerHook, register_external_hold};
#[doc(hidden)]
pub use hooks::owner_records_since_first_call;
pub use id::OwnerId;
pub use limiter::{CapacityLimiter, CapacityToken, LimiterStatistics};
pub use mutex::{
    Lock, MappedMutexGuard, Mutex, MutexGuard, MutexStatistics, OwnedMappedMutexGuard, OwnedMutexGuard,
};
pub use notify::{Notified, Notify};
pub use owner::current_owner;
pub use repair::RepairGuard;
pub use rwlock::{
    OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockMappedWriteGuard,
    RwLockReadGuard, RwLockStatistics, RwLockWriteGuard,
};
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, SemaphoreStatistics};
pub use tracked::{HandOver, Tracked, tracked, tracked_with};
