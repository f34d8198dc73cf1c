//! Repair after a break: the recovery path of POSIX robust mutexes
//! (`EOWNERDEAD`, then `pthread_mutex_consistent`) and of std's `clear_poison`.
//!
//! What we took: from POSIX, the state machine: a broken lock stays broken (sticky, as
//! `ENOTRECOVERABLE` is after a recoverer gives up; never Windows' one-shot
//! `WAIT_ABANDONED` that a giving-up recoverer loses), a recoverer gets the data, and only
//! an explicit "consistent" makes the lock usable again. From std: the repair is an
//! explicit, separate call (`clear_poison`), not a success code an acquire could ignore.
//! What we did differently: the repair never races the abandoned guard. POSIX grants the
//! lock to the next acquirer because the dead owner's thread is gone; here an abandoned
//! guard may still exist (moved to another task, or leaked), so a repair starts only
//! once every guard of the primitive has been dropped, and a leaked guard (which never
//! is) makes repair impossible rather than unsound. Waiters failed by the break keep
//! their error, and acquires during the repair fail as on any broken lock.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::core::SemCore;
use crate::error::RepairError;

/// Exclusive access to a broken mutex's or RwLock's data, to restore it. Made by
/// `Mutex::try_repair` and `RwLock::try_repair`. [`mark_consistent`] makes the lock
/// usable again; dropping the guard without it (giving up, or a panic while repairing)
/// leaves the lock broken, and repairable again.
///
/// [`mark_consistent`]: RepairGuard::mark_consistent
///
/// ```
/// use ownsync::{Mutex, RepairGuard};
/// # futures::executor::block_on(async {
/// let accounts = Mutex::new(vec![10, -10]);
/// let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
///     let mut guard = accounts.blocking_lock().unwrap();
///     guard[0] -= 5;
///     panic!("the transfer stopped half-way");
/// }));
/// assert!(accounts.is_broken());
/// let mut repair: RepairGuard<'_, Vec<i32>> = accounts.try_repair().unwrap();
/// repair[1] = -repair[0]; // restore the invariant: the sum is 0
/// repair.mark_consistent();
/// assert_eq!(*accounts.lock().await.unwrap(), [5, -5]);
/// # });
/// ```
#[must_use = "dropping it leaves the lock broken; call mark_consistent once the data is restored"]
pub struct RepairGuard<'a, T: ?Sized> {
    core: &'a SemCore,
    total: usize,
    data: *mut T,
    marker: PhantomData<&'a mut T>,
}

// SAFETY: like a write guard: a unique borrow of the data, released from any thread.
unsafe impl<T: ?Sized + Send> Send for RepairGuard<'_, T> {}
// SAFETY: sharing it shares `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RepairGuard<'_, T> {}

impl<'a, T: ?Sized> RepairGuard<'a, T> {
    /// Takes every permit of the broken `core` (`total` of them) for a repair of `data`.
    pub(crate) fn begin(core: &'a SemCore, total: usize, data: *mut T) -> Result<Self, RepairError> {
        core.try_begin_repair(total)?;
        Ok(RepairGuard { core, total, data, marker: PhantomData })
    }

    /// Declares the data consistent again: the lock is no longer broken, and acquires
    /// from now on succeed (the waiters the break failed keep their error).
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(0);
    /// let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     let _guard = mutex.blocking_lock().unwrap();
    ///     panic!("inside");
    /// }));
    /// let mut repair = mutex.try_repair().unwrap();
    /// *repair = 0;
    /// repair.mark_consistent();
    /// assert!(!mutex.is_broken() && mutex.try_lock().is_ok());
    /// ```
    pub fn mark_consistent(self) {
        let (core, total) = (self.core, self.total);
        std::mem::forget(self);
        core.end_repair(total, true);
    }
}

impl<T: ?Sized> Deref for RepairGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the repair holds every permit of the lock, which no guard had left
        // (`try_begin_repair`), so nothing else reaches the data until it ends.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for RepairGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for RepairGuard<'_, T> {
    fn drop(&mut self) {
        // Not marked consistent: the lock stays broken, repairable again.
        self.core.end_repair(self.total, false);
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for RepairGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepairGuard").field("data", &&**self).finish()
    }
}

/// Reaches the `unsafe` derefs of this file, so Miri checks them.
#[cfg(test)]
mod tests {
    use crate::mutex::Mutex;

    #[test]
    fn a_repair_reaches_the_data_alone_and_marks_it_consistent() {
        let mutex = Mutex::new(String::from("ab"));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = mutex.blocking_lock().unwrap();
            guard.push('!');
            panic!("inside");
        }));
        assert!(unwound.is_err() && mutex.is_broken());
        let mut repair = mutex.try_repair().unwrap();
        repair.pop();
        assert_eq!(format!("{repair:?}"), "RepairGuard { data: \"ab\" }");
        repair.mark_consistent();
        assert_eq!(*mutex.try_lock().unwrap(), "ab");
    }
}
