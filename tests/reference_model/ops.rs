//! The operations a case is made of, and how proptest draws them.

use proptest::prelude::*;

use crate::model::{Prim, What};

pub(crate) const OWNERS: usize = 3;
/// The pending slot of acquires made outside every owner (anonymous).
pub(crate) const OUTSIDE: usize = OWNERS;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Who {
    Owner(usize),
    /// A nested tracked scope, one or two levels deep, in owner `.0`'s poll: it tries
    /// once and completes, holding what it got.
    Nested(usize, u8),
    /// Outside every owner's poll: an anonymous hold (or the manager of a borrow on
    /// behalf of an owner).
    Outside,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum ExitHow {
    Completes,
    Cancelled,
    Panics,
}

/// What a thread does with its holds before it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ThreadEnd {
    Releases,
    /// Returns them through its `join` (the thread still answers for them as it ends).
    ReturnsThem,
    /// Hands them to owner `.0` first.
    HandsTo(usize),
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Acquire {
        who: Who,
        what: What,
        owned: bool,
        wait: bool,
    },
    /// Polls the pending acquires of a slot (an owner's, in its poll; or the outside ones).
    Poll(usize),
    Cancel(usize, usize),
    /// Drops hold `.0` inside owner `.1`'s poll, or outside every poll.
    Release(usize, Option<usize>),
    Leak(usize),
    /// Owner `.0`'s poll panics while hold `.1` is alive in it.
    PanicDrop(usize, usize),
    Split(usize),
    Merge(usize),
    Forget(usize),
    /// Hands hold `.0` to owner `.1`, or to an owner that exited.
    HandTo(usize, Option<usize>),
    Adopt(usize, usize),
    IntoOwned(usize),
    Downgrade(usize),
    Exit(usize, ExitHow),
    ManualAcquire(usize),
    ManualRelease(Option<usize>),
    ReleaseOnBehalf(usize),
    Repair(Prim, bool),
    /// A std thread takes what it can without blocking through the blocking entry
    /// points (and the `Lock`'s `blocking_acquire` if `.1`), then ends as `.2` says.
    Thread(Vec<(What, bool)>, bool, ThreadEnd),
    /// `Condition::wait` with mutex guard `.0`, first polled in owner `.1`'s poll (or
    /// outside every poll).
    CondWait(usize, Option<usize>),
    /// `notify(n)` (`notify_all` for `usize::MAX`).
    Notify(usize),
    SetTotal(usize),
    AddPermits(usize),
    ForgetPermits(usize),
    Close,
    /// Owner `.0` is cancelled while hold `.1` is alive in its future.
    CancelHolding(usize, usize),
    /// `Mutex::with_lock` (or `RwLock::with_write` if `.1`) by owner `.0`, polled once
    /// in its poll and dropped: a section that waits for `.2` (cut short) or returns.
    Section(usize, bool, bool),
}

pub(crate) fn what() -> impl Strategy<Value = What> {
    prop_oneof![
        Just(What::Lock),
        Just(What::Read),
        Just(What::Write),
        (1..=3u32).prop_map(What::Permits),
        Just(What::Token),
        (0..OWNERS).prop_map(What::TokenFor),
    ]
}

/// What a thread takes (no borrow on another's behalf, no owned RwLock guard: the
/// blocking entry points have none).
pub(crate) fn what_blocking() -> impl Strategy<Value = What> {
    prop_oneof![
        Just(What::Lock),
        Just(What::Read),
        Just(What::Write),
        (1..=3u32).prop_map(What::Permits),
        Just(What::Token)
    ]
}

pub(crate) fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => (0..OWNERS).prop_map(Who::Owner),
        1 => (0..OWNERS, 1..=2u8).prop_map(|(o, depth)| Who::Nested(o, depth)),
        1 => Just(Who::Outside),
    ]
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    let owner = 0..OWNERS;
    let hold = 0..8usize;
    prop_oneof![
        8 => (who(), what(), any::<bool>(), any::<bool>())
            .prop_map(|(who, what, owned, wait)| Op::Acquire { who, what, owned, wait }),
        3 => (0..=OUTSIDE).prop_map(Op::Poll),
        1 => (0..=OUTSIDE, 0..3usize).prop_map(|(o, i)| Op::Cancel(o, i)),
        4 => (hold.clone(), prop::option::of(owner.clone())).prop_map(|(h, o)| Op::Release(h, o)),
        2 => hold.clone().prop_map(Op::Leak),
        1 => (owner.clone(), hold.clone()).prop_map(|(o, h)| Op::PanicDrop(o, h)),
        1 => hold.clone().prop_map(Op::Split),
        1 => hold.clone().prop_map(Op::Merge),
        1 => hold.clone().prop_map(Op::Forget),
        2 => (hold.clone(), prop::option::weighted(0.9, owner.clone())).prop_map(|(h, o)| Op::HandTo(h, o)),
        1 => (hold.clone(), owner.clone()).prop_map(|(h, o)| Op::Adopt(h, o)),
        1 => hold.clone().prop_map(Op::IntoOwned),
        1 => hold.clone().prop_map(Op::Downgrade),
        3 => (owner.clone(), prop_oneof![Just(ExitHow::Completes), Just(ExitHow::Cancelled), Just(ExitHow::Panics)])
            .prop_map(|(o, how)| Op::Exit(o, how)),
        1 => owner.clone().prop_map(Op::ManualAcquire),
        1 => prop::option::of(owner.clone()).prop_map(Op::ManualRelease),
        1 => owner.clone().prop_map(Op::ReleaseOnBehalf),
        2 => (prop_oneof![Just(Prim::Mutex), Just(Prim::RwLock), Just(Prim::Semaphore), Just(Prim::Limiter)], any::<bool>())
            .prop_map(|(p, m)| Op::Repair(p, m)),
        2 => (
            prop::collection::vec((what_blocking(), any::<bool>()), 0..=2),
            any::<bool>(),
            prop_oneof![Just(ThreadEnd::Releases), Just(ThreadEnd::ReturnsThem), (0..OWNERS).prop_map(ThreadEnd::HandsTo)],
        )
            .prop_map(|(whats, manual, end)| Op::Thread(whats, manual, end)),
        2 => (hold.clone(), prop::option::of(0..OWNERS)).prop_map(|(h, o)| Op::CondWait(h, o)),
        2 => prop_oneof![Just(1usize), Just(2), Just(usize::MAX)].prop_map(Op::Notify),
        1 => (0..=4usize).prop_map(Op::SetTotal),
        1 => (1..=3usize).prop_map(Op::AddPermits),
        1 => (1..=2usize).prop_map(Op::ForgetPermits),
        1 => Just(Op::Close),
        2 => (owner.clone(), hold.clone()).prop_map(|(o, h)| Op::CancelHolding(o, h)),
        3 => (owner.clone(), any::<bool>(), any::<bool>()).prop_map(|(o, w, cut)| Op::Section(o, w, cut)),
    ]
}
