//! The RwLock's guards: read, write, mapped and owned; a writer's hold lives in the
//! core, a reader's in its guard (see `guard.rs`).

use super::RwLock;
use crate::core::{Hold, SemCore};
use crate::guard::{HoldSlot, InCore, guard_deref_mut, hold_guard, owned_into_parts};
use std::marker::PhantomData;
use std::sync::Arc;

/// The examples of the RwLock guards' `hand_to` and `adopt`.
macro_rules! rwlock_hand_doc {
    () => {
        r#"```
use std::sync::Arc;
use ownsync::{OwnedRwLockWriteGuard, RwLock, tracked};
let lock = Arc::new(RwLock::new(0));
let mut guard = lock.clone().try_write_owned().unwrap();
let worker = tracked(std::future::pending::<()>());
OwnedRwLockWriteGuard::hand_to(&mut guard, worker.owner()).unwrap();
assert_eq!(lock.statistics().writer(), Some(worker.owner()));
drop(worker); // cancelled while it answers for the guard
assert!(lock.is_broken());
```"#
    };
}
macro_rules! rwlock_adopt_doc {
    () => {
        r#"```
use std::sync::Arc;
let lock = Arc::new(ownsync::RwLock::new(0));
let mut guard = lock.clone().try_read_owned().unwrap();
std::thread::spawn(move || {
    ownsync::OwnedRwLockReadGuard::adopt(&mut guard).unwrap();
    std::mem::forget(guard); // this thread now answers for it...
})
.join()
.unwrap();
assert!(lock.is_broken()); // ...and ended holding it
```"#
    };
}

/// Shared access to an [`RwLock`]'s data (or a part of it, after `map`).
///
/// ```
/// let lock = ownsync::RwLock::new(vec![1, 2]);
/// let guard = lock.try_read().unwrap();
/// assert_eq!(guard.len(), 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    pub(super) core: &'a Arc<SemCore>,
    pub(super) data: *const T,
    pub(super) hold: Hold,
    pub(super) marker: PhantomData<&'a T>,
}

hold_guard!(RwLockReadGuard<'a, T>, T, |g| g.data, core: |g| g.core, permits: |_g| 1,
    docs: (rwlock_hand_doc!(), rwlock_adopt_doc!()));

// SAFETY: a read guard is a shared borrow of the data (`&T`) plus its hold, which any
// thread may release.
unsafe impl<T: ?Sized + Sync> Send for RwLockReadGuard<'_, T> {}
// SAFETY: sharing it shares `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// A read guard for a part of the data.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new((1, 2));
    /// let second = ownsync::RwLockReadGuard::map(lock.try_read().unwrap(), |pair| &pair.1);
    /// assert_eq!(*second, 2);
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&T) -> &U>(mut this: Self, f: F) -> RwLockReadGuard<'a, U> {
        let data: *const U = f(&*this);
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        RwLockReadGuard { core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(Some(1));
    /// let inner = ownsync::RwLockReadGuard::try_map(lock.try_read().unwrap(), |v| v.as_ref()).unwrap();
    /// assert_eq!(*inner, 1);
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&T) -> Option<&U>>(
        mut this: Self,
        f: F,
    ) -> Result<RwLockReadGuard<'a, U>, Self> {
        let data: *const U = match f(&*this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        Ok(RwLockReadGuard { core, data, hold, marker: PhantomData })
    }
}

/// Exclusive access to an [`RwLock`]'s data. Dropped while its thread panics, it breaks
/// the lock (`Panicked`).
///
/// ```
/// let lock = ownsync::RwLock::new(1);
/// *lock.try_write().unwrap() += 1;
/// assert_eq!(lock.into_inner(), 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    pub(super) lock: &'a RwLock<T>,
    pub(super) hold: InCore,
}

hold_guard!(RwLockWriteGuard<'a, T>, T, |g| g.lock.data.get(), core: |g| &g.lock.core,
    permits: |g| g.lock.write_permits(), docs: (rwlock_hand_doc!(), rwlock_adopt_doc!()));
guard_deref_mut!(RwLockWriteGuard<'a, T>, T, |g| g.lock.data.get());

// SAFETY: sharing a write guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// The guard of the write lock its caller has just taken, with that hold's
    /// registration.
    pub(crate) fn from_hold(lock: &'a RwLock<T>, hold: Hold) -> Self {
        // SAFETY: a write guard is made only for the lock's every permit, just taken by
        // the caller for this guard (the same fact that makes its `&mut T` sound).
        RwLockWriteGuard { lock, hold: unsafe { InCore::keep(&lock.core, hold) } }
    }

    /// Moves the hold's slot out for a guard made from this one.
    pub(crate) fn into_parts(mut this: Self) -> (&'a RwLock<T>, InCore) {
        let (lock, hold) = (this.lock, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        (lock, hold)
    }

    /// A write guard for a part of the data.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new((1, 2));
    /// *ownsync::RwLockWriteGuard::map(lock.try_write().unwrap(), |pair| &mut pair.1) += 1;
    /// assert_eq!(lock.into_inner(), (1, 3));
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        mut this: Self,
        f: F,
    ) -> RwLockMappedWriteGuard<'a, U> {
        let data: *mut U = f(&mut *this);
        let (lock, hold) = Self::into_parts(this);
        RwLockMappedWriteGuard { core: &lock.core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(Some(1));
    /// let inner = ownsync::RwLockWriteGuard::try_map(lock.try_write().unwrap(), |v| v.as_mut());
    /// assert_eq!(*inner.unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<RwLockMappedWriteGuard<'a, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (lock, hold) = Self::into_parts(this);
        Ok(RwLockMappedWriteGuard { core: &lock.core, data, hold, marker: PhantomData })
    }

    /// This guard as a mapped one of the whole data (`map(guard, |data| data)`).
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(1);
    /// let mapped: ownsync::RwLockMappedWriteGuard<'_, i32> =
    ///     ownsync::RwLockWriteGuard::into_mapped(lock.try_write().unwrap());
    /// assert_eq!(*mapped, 1);
    /// ```
    pub fn into_mapped(this: Self) -> RwLockMappedWriteGuard<'a, T> {
        Self::map(this, |data| data)
    }

    /// Atomically turns the write hold into a read hold: no writer gets in between. The
    /// read hold keeps the write hold's owner. Readers queued behind a writer still wait
    /// (the lock is fair).
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(1);
    /// let mut w = lock.try_write().unwrap();
    /// *w = 2;
    /// let r = w.downgrade();
    /// assert_eq!(*r, 2);
    /// assert!(lock.try_read().is_ok() && lock.try_write().is_err());
    /// ```
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        Self::downgrade_map(self, |data| data)
    }

    /// [`downgrade`](Self::downgrade) to a read guard for a part of the data.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new((1, 2));
    /// let second = ownsync::RwLockWriteGuard::downgrade_map(lock.try_write().unwrap(), |p| &p.1);
    /// assert_eq!(*second, 2);
    /// ```
    pub fn downgrade_map<U: ?Sized, F: FnOnce(&T) -> &U>(this: Self, f: F) -> RwLockReadGuard<'a, U> {
        let data: *const U = f(&*this);
        let (lock, mut slot) = Self::into_parts(this);
        let mut hold = slot.take_hold(&lock.core);
        lock.core.downgrade(&mut hold, lock.write_permits(), 1, &lock.core);
        RwLockReadGuard { core: &lock.core, data, hold, marker: PhantomData }
    }

    /// Like [`downgrade_map`](Self::downgrade_map), but `f` may decline, giving the write
    /// guard back (still a write guard).
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(Some(1));
    /// let w = lock.try_write().unwrap();
    /// let w = ownsync::RwLockWriteGuard::try_downgrade_map(w, |_| None::<&i32>).unwrap_err();
    /// let r = ownsync::RwLockWriteGuard::try_downgrade_map(w, |v| v.as_ref()).unwrap();
    /// assert_eq!(*r, 1);
    /// ```
    #[track_caller]
    pub fn try_downgrade_map<U: ?Sized, F: FnOnce(&T) -> Option<&U>>(
        this: Self,
        f: F,
    ) -> Result<RwLockReadGuard<'a, U>, Self> {
        let data: *const U = match f(&*this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (lock, mut slot) = Self::into_parts(this);
        let mut hold = slot.take_hold(&lock.core);
        lock.core.downgrade(&mut hold, lock.write_permits(), 1, &lock.core);
        Ok(RwLockReadGuard { core: &lock.core, data, hold, marker: PhantomData })
    }
}

/// Exclusive access to a part of an [`RwLock`]'s data, made by [`RwLockWriteGuard::map`].
///
/// ```
/// let lock = ownsync::RwLock::new([1, 2]);
/// let mut first = ownsync::RwLockWriteGuard::map(lock.try_write().unwrap(), |a| &mut a[0]);
/// *first = 5;
/// drop(first);
/// assert_eq!(lock.into_inner(), [5, 2]);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockMappedWriteGuard<'a, T: ?Sized> {
    pub(super) core: &'a Arc<SemCore>,
    pub(super) data: *mut T,
    pub(super) hold: InCore,
    pub(super) marker: PhantomData<&'a mut T>,
}

hold_guard!(RwLockMappedWriteGuard<'a, T>, T, |g| g.data, core: |g| g.core, permits: |g| g.core.exclusive_permits(),
    docs: (rwlock_hand_doc!(), rwlock_adopt_doc!()));
guard_deref_mut!(RwLockMappedWriteGuard<'a, T>, T, |g| g.data);

// SAFETY: a unique borrow of the data (`&mut T`) plus the hold.
unsafe impl<T: ?Sized + Send + Sync> Send for RwLockMappedWriteGuard<'_, T> {}
// SAFETY: sharing it shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLockMappedWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockMappedWriteGuard<'a, T> {
    /// Maps further into the data.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(((1, 2), 3));
    /// let outer = ownsync::RwLockWriteGuard::map(lock.try_write().unwrap(), |v| &mut v.0);
    /// let inner = ownsync::RwLockMappedWriteGuard::map(outer, |v| &mut v.1);
    /// assert_eq!(*inner, 2);
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        mut this: Self,
        f: F,
    ) -> RwLockMappedWriteGuard<'a, U> {
        let data: *mut U = f(&mut *this);
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        RwLockMappedWriteGuard { core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new((Some(1), 2));
    /// let outer = ownsync::RwLockWriteGuard::map(lock.try_write().unwrap(), |v| &mut v.0);
    /// assert!(ownsync::RwLockMappedWriteGuard::try_map(outer, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<RwLockMappedWriteGuard<'a, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        Ok(RwLockMappedWriteGuard { core, data, hold, marker: PhantomData })
    }
}

/// An [`RwLockReadGuard`] that keeps its lock alive through an `Arc` (`'static`); `U` is
/// the part of the data it reads after [`map`](Self::map).
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(ownsync::RwLock::new((1, 2)));
/// let guard = lock.clone().try_read_owned().unwrap();
/// let second = ownsync::OwnedRwLockReadGuard::map(guard, |pair| &pair.1);
/// assert_eq!(*second, 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedRwLockReadGuard<T: ?Sized, U: ?Sized = T> {
    pub(super) lock: Arc<RwLock<T>>,
    pub(super) data: *const U,
    pub(super) hold: Hold,
}

hold_guard!(OwnedRwLockReadGuard<T, U>, U, |g| g.data, core: |g| &g.lock.core, permits: |_g| 1,
    docs: (rwlock_hand_doc!(), rwlock_adopt_doc!()));
owned_into_parts!(OwnedRwLockReadGuard<T, U>, lock: Arc<RwLock<T>>, hold: Hold);

// SAFETY: as tokio's: it keeps the lock (so `T: Send + Sync` to move it) and shares `&U`.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Sync> Send for OwnedRwLockReadGuard<T, U> {}
// SAFETY: sharing it shares `&U` only.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Sync> Sync for OwnedRwLockReadGuard<T, U> {}

impl<T: ?Sized, U: ?Sized> OwnedRwLockReadGuard<T, U> {
    /// The lock this guard reads.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(()));
    /// let guard = lock.clone().try_read_owned().unwrap();
    /// assert!(Arc::ptr_eq(guard.rwlock(), &lock));
    /// ```
    pub fn rwlock(&self) -> &Arc<RwLock<T>> {
        &self.lock
    }

    /// A read guard for a part of the data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new([1, 2]));
    /// let first = ownsync::OwnedRwLockReadGuard::map(lock.try_read_owned().unwrap(), |a| &a[0]);
    /// assert_eq!(*first, 1);
    /// ```
    pub fn map<V: ?Sized, F: FnOnce(&U) -> &V>(this: Self, f: F) -> OwnedRwLockReadGuard<T, V> {
        let data: *const V = f(&*this);
        let (lock, hold) = Self::into_parts(this);
        OwnedRwLockReadGuard { lock, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(Some(1)));
    /// let guard = lock.try_read_owned().unwrap();
    /// assert!(ownsync::OwnedRwLockReadGuard::try_map(guard, |v| v.as_ref()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<V: ?Sized, F: FnOnce(&U) -> Option<&V>>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockReadGuard<T, V>, Self> {
        let data: *const V = match f(&*this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (lock, hold) = Self::into_parts(this);
        Ok(OwnedRwLockReadGuard { lock, data, hold })
    }
}

/// An [`RwLockWriteGuard`] that keeps its lock alive through an `Arc` (`'static`).
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(ownsync::RwLock::new(1));
/// let mut guard = lock.clone().try_write_owned().unwrap();
/// std::thread::spawn(move || *guard += 1).join().unwrap();
/// assert_eq!(*lock.try_read().unwrap(), 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedRwLockWriteGuard<T: ?Sized> {
    pub(super) lock: Arc<RwLock<T>>,
    pub(super) hold: InCore,
}

hold_guard!(OwnedRwLockWriteGuard<T>, T, |g| g.lock.data.get(), core: |g| &g.lock.core,
    permits: |g| g.lock.write_permits(), docs: (rwlock_hand_doc!(), rwlock_adopt_doc!()));
guard_deref_mut!(OwnedRwLockWriteGuard<T>, T, |g| g.lock.data.get());
owned_into_parts!(OwnedRwLockWriteGuard<T>, lock: Arc<RwLock<T>>, hold: InCore);

// SAFETY: sharing it shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for OwnedRwLockWriteGuard<T> {}

impl<T: ?Sized> OwnedRwLockWriteGuard<T> {
    /// The guard of the write lock its caller has just taken, with that hold's
    /// registration.
    pub(super) fn from_hold(lock: Arc<RwLock<T>>, hold: Hold) -> Self {
        // SAFETY: as for `RwLockWriteGuard::from_hold`.
        let hold = unsafe { InCore::keep(&lock.core, hold) };
        OwnedRwLockWriteGuard { lock, hold }
    }

    /// The lock this guard writes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(()));
    /// let guard = lock.clone().try_write_owned().unwrap();
    /// assert!(Arc::ptr_eq(guard.rwlock(), &lock));
    /// ```
    pub fn rwlock(&self) -> &Arc<RwLock<T>> {
        &self.lock
    }

    /// A write guard for a part of the data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new((1, 2)));
    /// *ownsync::OwnedRwLockWriteGuard::map(lock.clone().try_write_owned().unwrap(), |p| &mut p.0) = 5;
    /// assert_eq!(*lock.try_read().unwrap(), (5, 2));
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        mut this: Self,
        f: F,
    ) -> OwnedRwLockMappedWriteGuard<T, U> {
        let data: *mut U = f(&mut *this);
        let (lock, hold) = Self::into_parts(this);
        OwnedRwLockMappedWriteGuard { lock, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(Some(1)));
    /// let guard = lock.try_write_owned().unwrap();
    /// assert!(ownsync::OwnedRwLockWriteGuard::try_map(guard, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<OwnedRwLockMappedWriteGuard<T, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (lock, hold) = Self::into_parts(this);
        Ok(OwnedRwLockMappedWriteGuard { lock, data, hold })
    }

    /// This guard as a mapped one of the whole data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(1));
    /// let mapped = ownsync::OwnedRwLockWriteGuard::into_mapped(lock.try_write_owned().unwrap());
    /// assert_eq!(*mapped, 1);
    /// ```
    pub fn into_mapped(this: Self) -> OwnedRwLockMappedWriteGuard<T> {
        Self::map(this, |data| data)
    }

    /// Atomically turns the write hold into a read hold, keeping its owner.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(1));
    /// let r = lock.clone().try_write_owned().unwrap().downgrade();
    /// assert!(lock.try_read().is_ok() && lock.try_write().is_err());
    /// assert_eq!(*r, 1);
    /// ```
    pub fn downgrade(self) -> OwnedRwLockReadGuard<T> {
        Self::downgrade_map(self, |data| data)
    }

    /// [`downgrade`](Self::downgrade) to a read guard for a part of the data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new((1, 2)));
    /// let r = ownsync::OwnedRwLockWriteGuard::downgrade_map(lock.try_write_owned().unwrap(), |p| &p.1);
    /// assert_eq!(*r, 2);
    /// ```
    pub fn downgrade_map<U: ?Sized, F: FnOnce(&T) -> &U>(this: Self, f: F) -> OwnedRwLockReadGuard<T, U> {
        let data: *const U = f(&*this);
        let (lock, mut slot) = Self::into_parts(this);
        let mut hold = slot.take_hold(&lock.core);
        lock.core.downgrade(&mut hold, lock.write_permits(), 1, &lock.core);
        OwnedRwLockReadGuard { lock, data, hold }
    }

    /// Like [`downgrade_map`](Self::downgrade_map), but `f` may decline, giving the write
    /// guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(Some(1)));
    /// let w = lock.try_write_owned().unwrap();
    /// let r = ownsync::OwnedRwLockWriteGuard::try_downgrade_map(w, |v| v.as_ref()).unwrap();
    /// assert_eq!(*r, 1);
    /// ```
    #[track_caller]
    pub fn try_downgrade_map<U: ?Sized, F: FnOnce(&T) -> Option<&U>>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockReadGuard<T, U>, Self> {
        let data: *const U = match f(&*this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (lock, mut slot) = Self::into_parts(this);
        let mut hold = slot.take_hold(&lock.core);
        lock.core.downgrade(&mut hold, lock.write_permits(), 1, &lock.core);
        Ok(OwnedRwLockReadGuard { lock, data, hold })
    }
}

/// Exclusive access to a part of an [`RwLock`]'s data through an owned guard, made by
/// [`OwnedRwLockWriteGuard::map`].
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(ownsync::RwLock::new([1, 2]));
/// let mut first = ownsync::OwnedRwLockWriteGuard::map(lock.clone().try_write_owned().unwrap(), |a| &mut a[0]);
/// *first = 7;
/// drop(first);
/// assert_eq!(*lock.try_read().unwrap(), [7, 2]);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedRwLockMappedWriteGuard<T: ?Sized, U: ?Sized = T> {
    pub(super) lock: Arc<RwLock<T>>,
    pub(super) data: *mut U,
    pub(super) hold: InCore,
}

hold_guard!(OwnedRwLockMappedWriteGuard<T, U>, U, |g| g.data, core: |g| &g.lock.core,
    permits: |g| g.lock.write_permits(), docs: (rwlock_hand_doc!(), rwlock_adopt_doc!()));
guard_deref_mut!(OwnedRwLockMappedWriteGuard<T, U>, U, |g| g.data);
owned_into_parts!(OwnedRwLockMappedWriteGuard<T, U>, lock: Arc<RwLock<T>>, hold: InCore);

// SAFETY: a unique borrow of `U` plus the lock it keeps alive.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Send + Sync> Send for OwnedRwLockMappedWriteGuard<T, U> {}
// SAFETY: sharing it shares `&U` only.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Send + Sync> Sync for OwnedRwLockMappedWriteGuard<T, U> {}

impl<T: ?Sized, U: ?Sized> OwnedRwLockMappedWriteGuard<T, U> {
    /// The lock this guard writes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(()));
    /// let guard = ownsync::OwnedRwLockWriteGuard::into_mapped(lock.clone().try_write_owned().unwrap());
    /// assert!(Arc::ptr_eq(guard.rwlock(), &lock));
    /// ```
    pub fn rwlock(&self) -> &Arc<RwLock<T>> {
        &self.lock
    }

    /// Maps further into the data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new(((1, 2), 3)));
    /// let outer = ownsync::OwnedRwLockWriteGuard::map(lock.try_write_owned().unwrap(), |v| &mut v.0);
    /// let inner = ownsync::OwnedRwLockMappedWriteGuard::map(outer, |v| &mut v.1);
    /// assert_eq!(*inner, 2);
    /// ```
    pub fn map<V: ?Sized, F: FnOnce(&mut U) -> &mut V>(
        mut this: Self,
        f: F,
    ) -> OwnedRwLockMappedWriteGuard<T, V> {
        let data: *mut V = f(&mut *this);
        let (lock, hold) = Self::into_parts(this);
        OwnedRwLockMappedWriteGuard { lock, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(ownsync::RwLock::new((Some(1), 2)));
    /// let outer = ownsync::OwnedRwLockWriteGuard::map(lock.try_write_owned().unwrap(), |v| &mut v.0);
    /// assert!(ownsync::OwnedRwLockMappedWriteGuard::try_map(outer, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<V: ?Sized, F: FnOnce(&mut U) -> Option<&mut V>>(
        mut this: Self,
        f: F,
    ) -> Result<OwnedRwLockMappedWriteGuard<T, V>, Self> {
        let data: *mut V = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (lock, hold) = Self::into_parts(this);
        Ok(OwnedRwLockMappedWriteGuard { lock, data, hold })
    }
}
