//! One place that decides where the crate's concurrency building blocks come from.
//!
//! Normal builds use `std` atomics and `parking_lot`'s mutex (`std`'s under Miri: see
//! the `lock` module). Under `--cfg loom` every atomic, lock, thread-local and
//! park/unpark that takes part in a race is swapped for loom's model-checked version, so
//! the loom models in `loom-tests/` exercise the very code that ships, and the one
//! `UnsafeCell` (an owner's local holds) is loom's too, so the models also check that
//! nothing reaches it from two threads unordered. Reference counts (`Arc`) stay `std`:
//! they are not part of any race the models check, and `std::sync::Arc` allows
//! `Arc<dyn Trait>`.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

    pub(crate) use super::lock::{Condvar, Mutex};

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

    /// A step that gives the CPU to another runnable thread, used after the spin.
    pub(crate) fn yield_hint() {
        std::thread::yield_now();
    }
    /// How many times a blocked thread yields, after spinning, before it parks.
    pub(crate) const YIELD_LIMIT: u32 = 64;
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

    pub(crate) fn yield_hint() {
        loom::thread::yield_now();
    }
    /// As for [`SPIN_LIMIT`].
    pub(crate) const YIELD_LIMIT: u32 = 0;
}

/// The mutex and condition variable of normal builds: `parking_lot`'s.
#[cfg(all(not(loom), not(miri)))]
mod lock {
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
}

/// Under Miri, `std`'s, behind the same never-failing interface: `parking_lot` parks a
/// contended thread with a raw futex syscall, which Miri does not support on every
/// target (on i686 it is `futex_time64`), so whether a test passed depended on whether
/// Miri's schedule made two threads meet on a lock. `std`'s locks Miri models. What Miri
/// is there to check, the crate's own `unsafe`, is the same either way.
#[cfg(all(not(loom), miri))]
mod lock {
    use std::sync::PoisonError;

    #[derive(Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[derive(Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(std::sync::Condvar::new())
        }
        pub(crate) fn wait<'a, T>(
            &self,
            guard: std::sync::MutexGuard<'a, T>,
        ) -> std::sync::MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
    }
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A thread that finds the lock held spins, then parks until it is released. That
    /// park must work wherever the tests run, Miri on i686 included (where
    /// `parking_lot`'s `futex_time64` park is an unsupported syscall).
    #[test]
    fn a_thread_parked_on_a_held_lock_gets_it_when_released() {
        let lock = Mutex::new(0u32);
        let guard = lock.lock();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| *lock.lock() += 1);
            // Give the waiter turns enough to spin out and park (no timing involved: it
            // gets the lock whenever it is released, parked or not).
            for _ in 0..1_000 {
                std::thread::yield_now();
            }
            drop(guard);
            waiter.join().unwrap();
        });
        assert_eq!(*lock.lock(), 1);
    }
}
