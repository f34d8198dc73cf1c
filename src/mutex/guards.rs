//! The mutex's guards: borrowed, owned and mapped, each one pointer to its data and its
//! core (the hold lives in the core: see `guard.rs`).

use super::Mutex;
use crate::core::{Hold, SemCore};
use crate::guard::{HoldSlot, InCore, guard_deref_mut, hold_guard, owned_into_parts};
use std::marker::PhantomData;
use std::sync::Arc;

/// The examples of the mutex guards' `hand_to` and `adopt`.
macro_rules! mutex_hand_doc {
    () => {
        r#"```
use std::sync::Arc;
use ownsync::{Mutex, OwnedMutexGuard, tracked};
let mutex = Arc::new(Mutex::new(0));
let mut guard = mutex.clone().try_lock_owned().unwrap();
let worker = tracked(std::future::pending::<()>());
OwnedMutexGuard::hand_to(&mut guard, worker.owner()).unwrap();
assert_eq!(mutex.owner(), Some(worker.owner()));
drop(worker); // cancelled while it answers for the guard
assert!(mutex.is_broken());
drop(guard); // releases nothing: the mutex is broken
```"#
    };
}
macro_rules! mutex_adopt_doc {
    () => {
        r#"```
use std::sync::Arc;
let mutex = Arc::new(ownsync::Mutex::new(0));
let mut guard = mutex.clone().try_lock_owned().unwrap();
std::thread::spawn(move || {
    ownsync::OwnedMutexGuard::adopt(&mut guard).unwrap();
    std::mem::forget(guard); // this thread now answers for it...
})
.join()
.unwrap();
assert!(mutex.is_broken()); // ...and ended holding it
```"#
    };
}

/// Access to a [`Mutex`]'s data; dropping it unlocks (hands the lock to the next
/// waiter). Dropped while its thread panics, it breaks the mutex (`Panicked`).
///
/// ```
/// # futures::executor::block_on(async {
/// let mutex = ownsync::Mutex::new(vec![1]);
/// mutex.lock().await.unwrap().push(2);
/// assert_eq!(*mutex.lock().await.unwrap(), [1, 2]);
/// # });
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(super) mutex: &'a Mutex<T>,
    pub(super) hold: InCore,
}

hold_guard!(MutexGuard<'a, T>, T, |g| g.mutex.data.get(), core: |g| &g.mutex.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(MutexGuard<'a, T>, T, |g| g.mutex.data.get());

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The guard of the lock its caller has just taken, with that hold's registration.
    pub(crate) fn from_hold(mutex: &'a Mutex<T>, hold: Hold) -> Self {
        // SAFETY: a guard is made only for the mutex's one permit, just taken by the
        // caller for this guard (the same fact that makes its `&mut T` sound).
        MutexGuard { mutex, hold: unsafe { InCore::keep(&mutex.core, hold) } }
    }

    /// Gives the hold up to the caller without ending it (a condition's wait).
    pub(crate) fn into_parts(mut this: Self) -> (&'a Mutex<T>, Hold) {
        let (mutex, hold) = (this.mutex, this.hold.take_hold(&this.mutex.core));
        std::mem::forget(this);
        (mutex, hold)
    }

    /// The mutex this guard locks.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(());
    /// let guard = mutex.try_lock().unwrap();
    /// assert!(std::ptr::eq(ownsync::MutexGuard::mutex(&guard), &mutex));
    /// ```
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.mutex
    }

    /// A guard for a part of the data; the lock stays held until it drops.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new((1, 2));
    /// let mut second = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |pair| &mut pair.1);
    /// *second += 1;
    /// drop(second);
    /// assert_eq!(mutex.into_inner(), (1, 3));
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(mut this: Self, f: F) -> MappedMutexGuard<'a, U> {
        let data: *mut U = f(&mut *this);
        let (core, hold) = (&this.mutex.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        MappedMutexGuard { core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(Some(1));
    /// let guard = mutex.try_lock().unwrap();
    /// let inner = ownsync::MutexGuard::try_map(guard, |v| v.as_mut()).unwrap();
    /// assert_eq!(*inner, 1);
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (core, hold) = (&this.mutex.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        Ok(MappedMutexGuard { core, data, hold, marker: PhantomData })
    }
}

/// A [`MutexGuard`] that keeps its mutex alive through an `Arc` (`'static`).
///
/// ```
/// use std::sync::Arc;
/// let mutex = Arc::new(ownsync::Mutex::new(1));
/// let guard: ownsync::OwnedMutexGuard<i32> = mutex.try_lock_owned().unwrap();
/// std::thread::spawn(move || assert_eq!(*guard, 1)).join().unwrap();
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedMutexGuard<T: ?Sized> {
    pub(super) mutex: Arc<Mutex<T>>,
    pub(super) hold: InCore,
}

hold_guard!(OwnedMutexGuard<T>, T, |g| g.mutex.data.get(), core: |g| &g.mutex.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(OwnedMutexGuard<T>, T, |g| g.mutex.data.get());
owned_into_parts!(OwnedMutexGuard<T>, mutex: Arc<Mutex<T>>, hold: InCore);

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for OwnedMutexGuard<T> {}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// The guard of the lock its caller has just taken, with that hold's registration.
    pub(super) fn from_hold(mutex: Arc<Mutex<T>>, hold: Hold) -> Self {
        // SAFETY: as for `MutexGuard::from_hold`.
        let hold = unsafe { InCore::keep(&mutex.core, hold) };
        OwnedMutexGuard { mutex, hold }
    }

    /// The mutex this guard locks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(()));
    /// let guard = mutex.clone().try_lock_owned().unwrap();
    /// assert!(Arc::ptr_eq(guard.mutex(), &mutex));
    /// ```
    pub fn mutex(&self) -> &Arc<Mutex<T>> {
        &self.mutex
    }
}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// An owned guard for a part of the data (tokio's `OwnedMutexGuard::map`); the lock
    /// stays held until it drops.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new((1, 2)));
    /// let mut second = ownsync::OwnedMutexGuard::map(mutex.clone().try_lock_owned().unwrap(), |p| &mut p.1);
    /// *second += 1;
    /// drop(second);
    /// assert_eq!(*mutex.try_lock().unwrap(), (1, 3));
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(mut this: Self, f: F) -> OwnedMappedMutexGuard<T, U> {
        let data: *mut U = f(&mut *this);
        let (mutex, hold) = Self::into_parts(this);
        OwnedMappedMutexGuard { mutex, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(Some(1)));
    /// let guard = mutex.try_lock_owned().unwrap();
    /// assert_eq!(*ownsync::OwnedMutexGuard::try_map(guard, |v| v.as_mut()).unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<OwnedMappedMutexGuard<T, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (mutex, hold) = Self::into_parts(this);
        Ok(OwnedMappedMutexGuard { mutex, data, hold })
    }
}

/// An owned guard for part of a mutex's data (`'static`), made by
/// [`OwnedMutexGuard::map`].
///
/// ```
/// use std::sync::Arc;
/// let mutex = Arc::new(ownsync::Mutex::new([1, 2]));
/// let first = ownsync::OwnedMutexGuard::map(mutex.try_lock_owned().unwrap(), |a| &mut a[0]);
/// std::thread::spawn(move || assert_eq!(*first, 1)).join().unwrap();
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedMappedMutexGuard<T: ?Sized, U: ?Sized = T> {
    pub(super) mutex: Arc<Mutex<T>>,
    pub(super) data: *mut U,
    pub(super) hold: InCore,
}

hold_guard!(OwnedMappedMutexGuard<T, U>, U, |g| g.data, core: |g| &g.mutex.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(OwnedMappedMutexGuard<T, U>, U, |g| g.data);
owned_into_parts!(OwnedMappedMutexGuard<T, U>, mutex: Arc<Mutex<T>>, hold: InCore);

// SAFETY: a unique borrow of `U` plus the mutex it keeps alive (as tokio's).
unsafe impl<T: ?Sized + Send, U: ?Sized + Send> Send for OwnedMappedMutexGuard<T, U> {}
// SAFETY: sharing it shares `&U` only.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Send + Sync> Sync for OwnedMappedMutexGuard<T, U> {}

impl<T: ?Sized, U: ?Sized> OwnedMappedMutexGuard<T, U> {
    /// The mutex this guard locks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(((), ())));
    /// let guard = ownsync::OwnedMutexGuard::map(mutex.clone().try_lock_owned().unwrap(), |p| &mut p.0);
    /// assert!(Arc::ptr_eq(ownsync::OwnedMappedMutexGuard::mutex(&guard), &mutex));
    /// ```
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.mutex
    }

    /// Maps further into the data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(((1, 2), 3)));
    /// let outer = ownsync::OwnedMutexGuard::map(mutex.try_lock_owned().unwrap(), |v| &mut v.0);
    /// assert_eq!(*ownsync::OwnedMappedMutexGuard::map(outer, |v| &mut v.1), 2);
    /// ```
    pub fn map<V: ?Sized, F: FnOnce(&mut U) -> &mut V>(mut this: Self, f: F) -> OwnedMappedMutexGuard<T, V> {
        let data: *mut V = f(&mut *this);
        let (mutex, hold) = Self::into_parts(this);
        OwnedMappedMutexGuard { mutex, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new((Some(1), 2)));
    /// let outer = ownsync::OwnedMutexGuard::map(mutex.try_lock_owned().unwrap(), |v| &mut v.0);
    /// assert!(ownsync::OwnedMappedMutexGuard::try_map(outer, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<V: ?Sized, F: FnOnce(&mut U) -> Option<&mut V>>(
        mut this: Self,
        f: F,
    ) -> Result<OwnedMappedMutexGuard<T, V>, Self> {
        let data: *mut V = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (mutex, hold) = Self::into_parts(this);
        Ok(OwnedMappedMutexGuard { mutex, data, hold })
    }
}

/// A guard for part of a mutex's data, made by [`MutexGuard::map`].
///
/// ```
/// let mutex = ownsync::Mutex::new([1, 2, 3]);
/// let first = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |a| &mut a[0]);
/// assert_eq!(*first, 1);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MappedMutexGuard<'a, T: ?Sized> {
    pub(super) core: &'a Arc<SemCore>,
    pub(super) data: *mut T,
    pub(super) hold: InCore,
    pub(super) marker: PhantomData<&'a mut T>,
}

hold_guard!(MappedMutexGuard<'a, T>, T, |g| g.data, core: |g| g.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(MappedMutexGuard<'a, T>, T, |g| g.data);

// SAFETY: the guard is a unique borrow of the data (`&mut T`) plus the hold.
unsafe impl<T: ?Sized + Send> Send for MappedMutexGuard<'_, T> {}
// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for MappedMutexGuard<'_, T> {}

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Maps further into the data.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(((1, 2), 3));
    /// let outer = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |v| &mut v.0);
    /// let inner = ownsync::MappedMutexGuard::map(outer, |v| &mut v.1);
    /// assert_eq!(*inner, 2);
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(mut this: Self, f: F) -> MappedMutexGuard<'a, U> {
        let data: *mut U = f(&mut *this);
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        MappedMutexGuard { core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new((Some(1), 2));
    /// let outer = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |v| &mut v.0);
    /// assert!(ownsync::MappedMutexGuard::try_map(outer, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        Ok(MappedMutexGuard { core, data, hold, marker: PhantomData })
    }
}
