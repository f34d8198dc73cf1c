//! One place that decides where the crate's concurrency building blocks come from.
//!
//! Normal builds use `std` atomics and `parking_lot`'s mutex. Under `--cfg loom` every
//! atomic, lock, thread-local and park/unpark that takes part in a race is swapped for
//! loom's model-checked version, so the loom models in `loom-tests/` exercise the very
//! code that ships, and the one `UnsafeCell` (an owner's local holds) is loom's too, so
//! the models also check that nothing reaches it from two threads unordered. Reference counts (`Arc`) stay `std`: they are not part of any race
//! the models check, and `std::sync::Arc` allows `Arc<dyn Trait>`.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

    /// A mutex whose `lock` never fails (`parking_lot` has no poisoning).
    #[derive(Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable for [`Mutex`].
    #[derive(Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }
        pub(crate) fn wait<'a, T>(
            &self,
            mut guard: parking_lot::MutexGuard<'a, T>,
        ) -> parking_lot::MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
    }

    /// An `UnsafeCell` reached through a closure, as loom's is, so loom can check it.
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
        /// The value, through a unique borrow (no other access can exist).
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }

    /// A short busy-wait step, used before parking a blocked thread.
    pub(crate) fn spin_hint() {
        std::hint::spin_loop();
    }
    /// How many spin steps a blocked thread tries before it parks.
    pub(crate) const SPIN_LIMIT: u32 = 200;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

    /// loom's mutex behind the same never-failing `lock` as the normal build.
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// loom's condition variable behind the same interface.
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<'a, T>(
            &self,
            guard: loom::sync::MutexGuard<'a, T>,
        ) -> loom::sync::MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner())
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
    }

    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
    }
    /// Spinning multiplies loom's state space without adding a new interleaving.
    pub(crate) const SPIN_LIMIT: u32 = 0;
}

pub(crate) use imp::*;

/// `thread_local!` that loom can see.
macro_rules! owned_thread_local {
    ($($tt:tt)*) => {
        #[cfg(not(loom))]
        std::thread_local!($($tt)*);
        #[cfg(loom)]
        loom::thread_local!($($tt)*);
    };
}
pub(crate) use owned_thread_local;
