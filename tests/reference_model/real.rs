//! The crate driven by hand: owners are real `tracked` futures polled with a no-op
//! waker, each command runs inside its owner's poll (or outside every poll, where an
//! acquire is anonymous), so every run is deterministic: no runtime, no threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ownsync::{
    AcquireError, CapacityLimiter, CapacityToken, Condition, HandOverError, Mutex, MutexGuard,
    OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, OwnedSemaphorePermit, OwnerId, RwLock,
    RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit, Tracked, TryAcquireError, TryLockError,
    tracked,
};

use crate::model::{Seen, What};

/// The primitives of one case.
pub struct Prims {
    pub mutex: Arc<Mutex<()>>,
    pub rwlock: Arc<RwLock<()>>,
    pub semaphore: Arc<Semaphore>,
    pub limiter: CapacityLimiter,
    /// A condition used with `mutex`.
    pub cond: Condition,
    /// A semaphore of the memory check's own, one permit per owner.
    pub flush: Semaphore,
}

/// Any guard, permit or token.
pub enum RealHold<'p> {
    Mutex(MutexGuard<'p, ()>),
    MutexOwned(OwnedMutexGuard<()>),
    Read(RwLockReadGuard<'p, ()>),
    ReadOwned(OwnedRwLockReadGuard<()>),
    Write(RwLockWriteGuard<'p, ()>),
    WriteOwned(OwnedRwLockWriteGuard<()>),
    Permit(SemaphorePermit<'p>),
    PermitOwned(OwnedSemaphorePermit),
    Token(CapacityToken<'p>),
}

impl<'p> RealHold<'p> {
    pub fn hand_to(&mut self, to: OwnerId) -> Result<(), HandOverError> {
        match self {
            RealHold::Mutex(g) => MutexGuard::hand_to(g, to),
            RealHold::MutexOwned(g) => OwnedMutexGuard::hand_to(g, to),
            RealHold::Read(g) => RwLockReadGuard::hand_to(g, to),
            RealHold::ReadOwned(g) => OwnedRwLockReadGuard::hand_to(g, to),
            RealHold::Write(g) => RwLockWriteGuard::hand_to(g, to),
            RealHold::WriteOwned(g) => OwnedRwLockWriteGuard::hand_to(g, to),
            RealHold::Permit(p) => p.hand_to(to),
            RealHold::PermitOwned(p) => p.hand_to(to),
            RealHold::Token(t) => t.hand_to(to),
        }
    }
    pub fn adopt(&mut self) -> Result<(), HandOverError> {
        match self {
            RealHold::Mutex(g) => MutexGuard::adopt(g),
            RealHold::MutexOwned(g) => OwnedMutexGuard::adopt(g),
            RealHold::Read(g) => RwLockReadGuard::adopt(g),
            RealHold::ReadOwned(g) => OwnedRwLockReadGuard::adopt(g),
            RealHold::Write(g) => RwLockWriteGuard::adopt(g),
            RealHold::WriteOwned(g) => OwnedRwLockWriteGuard::adopt(g),
            RealHold::Permit(p) => p.adopt(),
            RealHold::PermitOwned(p) => p.adopt(),
            RealHold::Token(t) => t.adopt(),
        }
    }
    /// Splits one permit off a semaphore permit of 2 or more.
    pub fn split(&mut self) -> Option<RealHold<'p>> {
        match self {
            RealHold::Permit(p) => p.split(1).map(RealHold::Permit),
            RealHold::PermitOwned(p) => p.split(1).map(RealHold::PermitOwned),
            _ => None,
        }
    }
    /// Merges `other` into this one if both are semaphore permits of one kind; gives it
    /// back otherwise.
    pub fn merge(&mut self, other: RealHold<'p>) -> Result<(), RealHold<'p>> {
        match (self, other) {
            (RealHold::Permit(p), RealHold::Permit(q)) => {
                p.merge(q);
                Ok(())
            }
            (RealHold::PermitOwned(p), RealHold::PermitOwned(q)) => {
                p.merge(q);
                Ok(())
            }
            (_, other) => Err(other),
        }
    }
    pub fn is_permit(&self) -> bool {
        matches!(self, RealHold::Permit(_) | RealHold::PermitOwned(_))
    }
    pub fn same_kind(&self, other: &RealHold<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Makes the acquire future (or the try) of `what` on `prims`.
pub(crate) fn acquire_future<'p>(
    prims: &'p Prims,
    what: What,
    owned: bool,
    borrower: Option<OwnerId>,
) -> Acquiring<'p> {
    match (what, owned) {
        (What::Lock, false) => {
            Box::pin(async move { prims.mutex.lock().await.map(RealHold::Mutex).map_err(seen_acquire) })
        }
        (What::Lock, true) => Box::pin(async move {
            prims.mutex.clone().lock_owned().await.map(RealHold::MutexOwned).map_err(seen_acquire)
        }),
        (What::Read, false) => {
            Box::pin(async move { prims.rwlock.read().await.map(RealHold::Read).map_err(seen_acquire) })
        }
        (What::Read, true) => Box::pin(async move {
            prims.rwlock.clone().read_owned().await.map(RealHold::ReadOwned).map_err(seen_acquire)
        }),
        (What::Write, false) => {
            Box::pin(async move { prims.rwlock.write().await.map(RealHold::Write).map_err(seen_acquire) })
        }
        (What::Write, true) => Box::pin(async move {
            prims.rwlock.clone().write_owned().await.map(RealHold::WriteOwned).map_err(seen_acquire)
        }),
        (What::Permits(n), false) => Box::pin(async move {
            prims.semaphore.acquire_many(n).await.map(RealHold::Permit).map_err(seen_acquire)
        }),
        (What::Permits(n), true) => Box::pin(async move {
            prims
                .semaphore
                .clone()
                .acquire_many_owned(n)
                .await
                .map(RealHold::PermitOwned)
                .map_err(seen_acquire)
        }),
        (What::Token, _) => Box::pin(async move {
            let token = prims.limiter.acquire().await.map_err(seen_acquire)?;
            Ok(RealHold::Token(if owned { token.into_owned() } else { token }))
        }),
        (What::TokenFor(_), _) => Box::pin(async move {
            let borrower = borrower.expect("an explicit borrower");
            let token = prims.limiter.acquire_on_behalf_of(borrower).await.map_err(seen_acquire)?;
            Ok(RealHold::Token(if owned { token.into_owned() } else { token }))
        }),
    }
}

pub(crate) fn try_acquire<'p>(
    prims: &'p Prims,
    what: What,
    owned: bool,
    borrower: Option<OwnerId>,
) -> Result<RealHold<'p>, Seen> {
    match (what, owned) {
        (What::Lock, false) => prims.mutex.try_lock().map(RealHold::Mutex).map_err(seen_try_lock),
        (What::Lock, true) => {
            prims.mutex.clone().try_lock_owned().map(RealHold::MutexOwned).map_err(seen_try_lock)
        }
        (What::Read, false) => prims.rwlock.try_read().map(RealHold::Read).map_err(seen_try_lock),
        (What::Read, true) => {
            prims.rwlock.clone().try_read_owned().map(RealHold::ReadOwned).map_err(seen_try_lock)
        }
        (What::Write, false) => prims.rwlock.try_write().map(RealHold::Write).map_err(seen_try_lock),
        (What::Write, true) => {
            prims.rwlock.clone().try_write_owned().map(RealHold::WriteOwned).map_err(seen_try_lock)
        }
        (What::Permits(n), false) => {
            prims.semaphore.try_acquire_many(n).map(RealHold::Permit).map_err(seen_try_acquire)
        }
        (What::Permits(n), true) => prims
            .semaphore
            .clone()
            .try_acquire_many_owned(n)
            .map(RealHold::PermitOwned)
            .map_err(seen_try_acquire),
        (What::Token, _) => {
            let token = prims.limiter.try_acquire().map_err(seen_try_acquire)?;
            Ok(RealHold::Token(if owned { token.into_owned() } else { token }))
        }
        (What::TokenFor(_), _) => {
            let borrower = borrower.expect("an explicit borrower");
            let token = prims.limiter.try_acquire_on_behalf_of(borrower).map_err(seen_try_acquire)?;
            Ok(RealHold::Token(if owned { token.into_owned() } else { token }))
        }
    }
}

pub(crate) fn blocking_acquire<'p>(prims: &'p Prims, what: What, owned: bool) -> Result<RealHold<'p>, Seen> {
    match (what, owned) {
        (What::Lock, false) => prims.mutex.blocking_lock().map(RealHold::Mutex),
        (What::Lock, true) => prims.mutex.clone().blocking_lock_owned().map(RealHold::MutexOwned),
        (What::Read, _) => prims.rwlock.blocking_read().map(RealHold::Read),
        (What::Write, _) => prims.rwlock.blocking_write().map(RealHold::Write),
        (What::Permits(n), false) => prims.semaphore.blocking_acquire_many(n).map(RealHold::Permit),
        (What::Permits(n), true) => {
            prims.semaphore.clone().blocking_acquire_many_owned(n).map(RealHold::PermitOwned)
        }
        (What::Token, _) => prims
            .limiter
            .blocking_acquire()
            .map(|token| RealHold::Token(if owned { token.into_owned() } else { token })),
        (What::TokenFor(_), _) => unreachable!("not generated"),
    }
    .map_err(seen_acquire)
}

pub type Acquiring<'p> = Pin<Box<dyn Future<Output = Result<RealHold<'p>, Seen>> + 'p>>;

pub fn seen_acquire(err: AcquireError) -> Seen {
    match err {
        AcquireError::Closed => Seen::Closed,
        AcquireError::Broken(err) => Seen::Broken(err.owner(), err.reason()),
        AcquireError::WouldDeadlock => Seen::WouldDeadlock,
        AcquireError::OwnerGone(_) => Seen::OwnerGone,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn seen_try_lock(err: TryLockError) -> Seen {
    match err {
        TryLockError::WouldBlock => Seen::Busy,
        TryLockError::Broken(err) => Seen::Broken(err.owner(), err.reason()),
        TryLockError::WouldDeadlock => Seen::WouldDeadlock,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn seen_try_acquire(err: TryAcquireError) -> Seen {
    match err {
        TryAcquireError::NoPermits => Seen::Busy,
        TryAcquireError::Closed => Seen::Closed,
        TryAcquireError::Broken(err) => Seen::Broken(err.owner(), err.reason()),
        TryAcquireError::WouldDeadlock => Seen::WouldDeadlock,
        TryAcquireError::OwnerGone(_) => Seen::OwnerGone,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn seen_hand_over(result: Result<(), HandOverError>) -> Seen {
    match result {
        Ok(()) => Seen::Ok,
        Err(HandOverError::OwnerGone(_)) => Seen::OwnerGone,
        Err(HandOverError::Abandoned) => Seen::HandOverAbandoned,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

type Command<'p> = Box<dyn FnOnce(&mut Context<'_>) + 'p>;

/// The body of an owner task: runs the command it is handed, then waits, or completes
/// when told to.
struct OwnerLoop<'p> {
    inbox: Rc<RefCell<Option<Command<'p>>>>,
    finish: Rc<Cell<bool>>,
    /// A hold to keep alive in this future (moved into `kept` by the next poll).
    handoff: Rc<RefCell<Option<Kept<'p>>>>,
    /// Holds alive in the future: dropped with it, inside the owner's cancellation.
    kept: Vec<Kept<'p>>,
}

/// A hold kept alive in an owner's future: dropping the box drops it.
type Kept<'p> = Box<dyn FnOnce() + 'p>;

impl Future for OwnerLoop<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let command = self.inbox.borrow_mut().take();
        if let Some(command) = command {
            command(cx);
        }
        let handed = self.handoff.borrow_mut().take();
        self.kept.extend(handed);
        if self.finish.get() { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// A tracked task driven by hand.
pub struct RealOwner<'p> {
    task: Option<Pin<Box<Tracked<OwnerLoop<'p>>>>>,
    inbox: Rc<RefCell<Option<Command<'p>>>>,
    finish: Rc<Cell<bool>>,
    handoff: Rc<RefCell<Option<Kept<'p>>>>,
}

impl<'p> RealOwner<'p> {
    pub fn new() -> Self {
        let inbox = Rc::new(RefCell::new(None));
        let finish = Rc::new(Cell::new(false));
        let handoff = Rc::new(RefCell::new(None));
        let body = OwnerLoop {
            inbox: inbox.clone(),
            finish: finish.clone(),
            handoff: handoff.clone(),
            kept: Vec::new(),
        };
        RealOwner { task: Some(Box::pin(tracked(body))), inbox, finish, handoff }
    }
    pub fn id(&self) -> OwnerId {
        self.task.as_ref().expect("a live owner").owner()
    }
    /// Runs `command` inside this owner's poll and returns what it returned.
    pub fn within<R: 'p>(&mut self, command: impl FnOnce(&mut Context<'_>) -> R + 'p) -> R {
        let out: Rc<RefCell<Option<R>>> = Rc::new(RefCell::new(None));
        let slot = out.clone();
        *self.inbox.borrow_mut() = Some(Box::new(move |cx| *slot.borrow_mut() = Some(command(cx))));
        let task = self.task.as_mut().expect("a live owner");
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        out.borrow_mut().take().expect("the command ran")
    }
    /// Exit: normal (the body completes in its next poll).
    pub fn complete(&mut self) {
        self.finish.set(true);
        let mut task = self.task.take().expect("a live owner");
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready());
    }
    /// Exit: cancelled (dropped unfinished).
    pub fn cancel(&mut self) {
        drop(self.task.take());
    }
    /// Exit: cancelled with `hold` alive in its future (moved there by one more poll),
    /// so that the cancellation drops it.
    pub fn cancel_holding(&mut self, hold: RealHold<'p>) {
        *self.handoff.borrow_mut() = Some(Box::new(move || drop(hold)));
        self.within(|_| ());
        assert!(self.handoff.borrow().is_none(), "kept in the future");
        self.cancel();
    }
    /// Exit: panicking, with `hold` (if any) alive in the poll that panics: the unwind
    /// drops it inside the owner's poll, in a panic that began in its section.
    pub fn panic_holding(&mut self, hold: Option<RealHold<'p>>) {
        let mut task = self.task.take().expect("a live owner");
        *self.inbox.borrow_mut() = Some(Box::new(move |_| {
            let _alive_in_the_unwind = hold;
            std::panic::panic_any(Quiet);
        }));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = task.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        }));
        assert!(unwound.is_err(), "the poll panicked");
        drop(task);
    }
}

/// The payload of the panics this test makes (the panic hook stays quiet for it).
pub struct Quiet;
