//! What every guard is: a pointer to its data, a [`Hold`] on its
//! primitive's core, and a `Drop` that ends the hold. Written once here for the mutex
//! and RwLock guards (nine types), so hand-over, adoption, deref and the panic-aware
//! release behave the same for all of them.
//!
//! Where the hold lives is the guard's [`HoldSlot`]: a reader's is in the guard; an
//! exclusive hold's (a mutex's, a writer's) is in its core ([`InCore`]), since there is
//! one at a time, so those guards are one pointer, as tokio's are.

use crate::core::{Hold, SemCore};

/// Where a guard keeps its hold's registration.
pub(crate) trait HoldSlot {
    /// Takes the hold out: to end it, or to keep it elsewhere (a condition's wait, a
    /// downgrade).
    fn take_hold(&mut self, core: &SemCore) -> Hold;
    /// Runs `f` on the hold where it is.
    fn with_hold<R>(&mut self, core: &SemCore, f: impl FnOnce(&mut Hold) -> R) -> R;
}

/// A shared hold (a reader's) is kept in its guard.
impl HoldSlot for Hold {
    fn take_hold(&mut self, _core: &SemCore) -> Hold {
        std::mem::take(self)
    }
    fn with_hold<R>(&mut self, _core: &SemCore, f: impl FnOnce(&mut Hold) -> R) -> R {
        f(self)
    }
}

/// The slot of an exclusive hold: the hold is in its core (see
/// [`SemCore::put_exclusive_hold`]), and this zero-sized marker stands for it in the
/// guard. It moves with the guard (`map`, owned parts) by plain moves; only the guard
/// holding it may reach the core's cell, which is what makes those reaches sound.
#[derive(Default)]
pub(crate) struct InCore(());

impl InCore {
    /// Keeps `hold` in `core` for the guard about to be made.
    ///
    /// # Safety
    /// The caller has just taken `core`'s exclusive permits, for the guard that will own
    /// the returned slot and nothing else.
    #[inline]
    pub(crate) unsafe fn keep(core: &SemCore, hold: Hold) -> InCore {
        // SAFETY: the caller holds the exclusive permits and makes the one guard.
        unsafe { core.put_exclusive_hold(hold) };
        InCore(())
    }
}

impl HoldSlot for InCore {
    #[inline]
    fn take_hold(&mut self, core: &SemCore) -> Hold {
        // SAFETY: an `InCore` exists only inside the guard of the current exclusive hold
        // (made by `keep` as its permits were taken, moved with the guard, never
        // copied), reached here through `&mut`.
        unsafe { core.take_exclusive_hold() }
    }
    fn with_hold<R>(&mut self, core: &SemCore, f: impl FnOnce(&mut Hold) -> R) -> R {
        let mut hold = self.take_hold(core);
        let result = f(&mut hold);
        // SAFETY: as in `take_hold`; the hold goes back to the cell it was taken from.
        unsafe { core.put_exclusive_hold(hold) };
        result
    }
}

/// Implements a guard's hand-over (`hand_to`, `adopt`, [`HandOver`](crate::tracked::HandOver)),
/// `Deref`, `Drop` (ending its hold of `permits`), `Debug` and `Display`. `docs` are
/// the examples of `hand_to` and `adopt` for this family. A guard of an exclusive hold
/// adds [`guard_deref_mut!`].
macro_rules! hold_guard {
    (
        $guard:ident < $($lt:lifetime,)? $($param:ident),* >, $target:ty,
        |$this:ident| $data:expr,
        core: |$core_this:ident| $core:expr,
        permits: |$permits_this:ident| $permits:expr,
        docs: ($hand_doc:expr, $adopt_doc:expr)
    ) => {
        impl<$($lt,)? $($param: ?Sized),*> $guard<$($lt,)? $($param),*> {
            /// Hands this guard's hold to `owner`: from now on that owner
            /// answers for it, so if it exits (or panics) with the guard the primitive
            /// breaks, naming it. For a guard that moves to another task or thread.
            /// An associated function, so that it never shadows a method of the data.
            ///
            /// # Errors
            /// [`HandOverError::OwnerGone`](crate::HandOverError::OwnerGone) if `owner`
            /// is not a live owner (then the hold stays as it was);
            /// [`HandOverError::Abandoned`](crate::HandOverError::Abandoned) if the
            /// previous owner's exit already abandoned it.
            ///
            #[doc = $hand_doc]
            #[track_caller]
            pub fn hand_to(this: &mut Self, owner: crate::id::OwnerId) -> Result<(), crate::error::HandOverError> {
                let core: std::sync::Arc<crate::core::SemCore> = {
                    let $core_this = &*this;
                    std::sync::Arc::clone($core)
                };
                let permits: usize = {
                    let $permits_this = &*this;
                    $permits
                };
                let site = crate::owner::caller_site();
                crate::guard::HoldSlot::with_hold(&mut this.hold, &core, |hold| {
                    hold.hand_to(owner, permits, || core.clone(), site)
                })?;
                core.set_holder(owner, permits);
                Ok(())
            }

            /// [`hand_to`](Self::hand_to) the current owner: for the task (or thread)
            /// that received the guard, to answer for it from now on.
            ///
            #[doc = $adopt_doc]
            #[track_caller]
            pub fn adopt(this: &mut Self) -> Result<(), crate::error::HandOverError> {
                Self::hand_to(this, crate::owner::current_owner())
            }
        }

        impl<$($lt,)? $($param: ?Sized),*> crate::tracked::HandOver for $guard<$($lt,)? $($param),*> {
            #[track_caller]
            fn hand_to(&mut self, owner: crate::id::OwnerId) -> Result<(), crate::error::HandOverError> {
                Self::hand_to(self, owner)
            }
        }

        impl<$($lt,)? $($param: ?Sized),*> std::ops::Deref for $guard<$($lt,)? $($param),*> {
            type Target = $target;
            fn deref(&self) -> &$target {
                let $this = self;
                // SAFETY: the guard's hold (its permits) is held while it lives, and a
                // hold of that many permits excludes every writer.
                unsafe { &*$data }
            }
        }
        impl<$($lt,)? $($param: ?Sized),*> Drop for $guard<$($lt,)? $($param),*> {
            #[inline(always)]
            fn drop(&mut self) {
                let mut slot = std::mem::take(&mut self.hold);
                let permits = { let $permits_this = &*self; $permits };
                let core: &crate::core::SemCore = { let $core_this = &*self; $core };
                let hold = crate::guard::HoldSlot::take_hold(&mut slot, core);
                core.end_hold(hold, permits);
            }
        }
        impl<$($lt,)? $($param: ?Sized),*> std::fmt::Debug for $guard<$($lt,)? $($param),*>
        where $target: std::fmt::Debug {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&**self, f)
            }
        }
        impl<$($lt,)? $($param: ?Sized),*> std::fmt::Display for $guard<$($lt,)? $($param),*>
        where $target: std::fmt::Display {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&**self, f)
            }
        }
    };
}
pub(crate) use hold_guard;

/// `DerefMut` for a guard of an exclusive hold (a mutex's, an RwLock writer's).
macro_rules! guard_deref_mut {
    ($guard:ident < $($lt:lifetime,)? $($param:ident),* >, $target:ty, |$this:ident| $data:expr) => {
        impl<$($lt,)? $($param: ?Sized),*> std::ops::DerefMut for $guard<$($lt,)? $($param),*> {
            fn deref_mut(&mut self) -> &mut $target {
                let $this = self;
                // SAFETY: an exclusive hold excludes every other guard, and `&mut self`
                // makes this borrow unique.
                unsafe { &mut *$data }
            }
        }
    };
}
pub(crate) use guard_deref_mut;

/// `into_parts` for an owned guard (one that keeps its lock alive through an `Arc` in
/// field `$field`): moves the `Arc` and the hold's slot (`$slot`) out without running the
/// guard's `Drop`, for the guard `map`, `try_map` or `downgrade` makes of it.
macro_rules! owned_into_parts {
    ($guard:ident < $($param:ident),* >, $field:ident: $arc:ty, hold: $slot:ty) => {
        impl<$($param: ?Sized),*> $guard<$($param),*> {
            fn into_parts(mut this: Self) -> ($arc, $slot) {
                let hold = std::mem::take(&mut this.hold);
                // SAFETY: `this` is forgotten right after, so the `Arc` is moved out of it
                // exactly once and never dropped in place.
                let arc = unsafe { std::ptr::read(&this.$field) };
                std::mem::forget(this);
                (arc, hold)
            }
        }
    };
}
pub(crate) use owned_into_parts;
