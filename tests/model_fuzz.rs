//! Model-based fuzz (proptest): random sequences of acquire, try, release (in the owner's
//! poll or elsewhere), permit split elsewhere, hand-over to another owner, cancel, leak,
//! permit forget, owner exit, add_permits, forget_permits and close across three owners,
//! run against
//! the real Semaphore and a sequential reference model; every observable result must
//! match. Deterministic: owners are real `tracked` futures polled by hand (a command runs
//! inside its owner's poll), no runtime, no threads. Case count: `PROPTEST_CASES`
//! (default 256).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ownsync::{AcquireError, OwnedSemaphorePermit, OwnerId, Semaphore, Tracked, TryAcquireError, tracked};
use proptest::prelude::*;

const OWNERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    TryAcquire(usize, u32),
    Acquire(usize, u32),
    PollPending(usize),
    Release(usize, usize),
    /// The permit is dropped outside its owner's poll, while the owner lives.
    ReleaseElsewhere(usize, usize),
    /// One permit is split off outside the owner's poll; both parts go back to it.
    SplitElsewhere(usize, usize),
    /// Held permit `i` of owner `o` is handed (outside every poll) to owner `to`, which
    /// answers for it from then on.
    HandTo(usize, usize, usize),
    Cancel(usize, usize),
    Leak(usize, usize),
    Forget(usize, usize),
    Exit(usize),
    AddPermits(usize),
    ForgetPermits(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let owner = 0..OWNERS;
    prop_oneof![
        (owner.clone(), 1..=3u32).prop_map(|(o, n)| Op::TryAcquire(o, n)),
        (owner.clone(), 1..=3u32).prop_map(|(o, n)| Op::Acquire(o, n)),
        owner.clone().prop_map(Op::PollPending),
        (owner.clone(), 0..3usize).prop_map(|(o, i)| Op::Release(o, i)),
        (owner.clone(), 0..3usize).prop_map(|(o, i)| Op::ReleaseElsewhere(o, i)),
        (owner.clone(), 0..3usize).prop_map(|(o, i)| Op::SplitElsewhere(o, i)),
        (owner.clone(), 0..3usize, owner.clone()).prop_map(|(o, i, to)| Op::HandTo(o, i, to)),
        (owner.clone(), 0..3usize).prop_map(|(o, i)| Op::Cancel(o, i)),
        (owner.clone(), 0..3usize).prop_map(|(o, i)| Op::Leak(o, i)),
        (owner.clone(), 0..3usize).prop_map(|(o, i)| Op::Forget(o, i)),
        owner.prop_map(Op::Exit),
        (1..=3usize).prop_map(Op::AddPermits),
        (1..=2usize).prop_map(Op::ForgetPermits),
        Just(Op::Close),
    ]
}

/// What an operation let the caller see.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Ok,
    Pending,
    NoPermits,
    Closed,
    Broken(OwnerId),
}

fn seen_acquire(result: &Result<OwnedSemaphorePermit, AcquireError>) -> Seen {
    match result {
        Ok(_) => Seen::Ok,
        Err(AcquireError::Closed) => Seen::Closed,
        Err(AcquireError::Broken(err)) => Seen::Broken(err.owner()),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

// ---------------- the real thing, driven by hand ----------------

type Acquiring = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>>>>;
type Command = Box<dyn FnOnce(&mut OwnerState, &mut Context<'_>) -> Vec<Seen>>;

#[derive(Default)]
struct OwnerState {
    pending: Vec<Acquiring>,
    held: Vec<OwnedSemaphorePermit>,
}

/// The body of an owner task: runs the command it is handed, then waits.
struct OwnerLoop {
    state: OwnerState,
    inbox: Rc<RefCell<Option<Command>>>,
    outbox: Rc<RefCell<Vec<Seen>>>,
}

impl Future for OwnerLoop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let command = self.inbox.borrow_mut().take();
        if let Some(command) = command {
            let seen = command(&mut self.state, cx);
            *self.outbox.borrow_mut() = seen;
        }
        Poll::Pending
    }
}

struct RealOwner {
    task: Pin<Box<Tracked<OwnerLoop>>>,
    inbox: Rc<RefCell<Option<Command>>>,
    outbox: Rc<RefCell<Vec<Seen>>>,
}

impl RealOwner {
    fn new() -> Self {
        let inbox = Rc::new(RefCell::new(None));
        let outbox = Rc::new(RefCell::new(Vec::new()));
        let body = OwnerLoop { state: OwnerState::default(), inbox: inbox.clone(), outbox: outbox.clone() };
        RealOwner { task: Box::pin(tracked(body)), inbox, outbox }
    }
    fn id(&self) -> OwnerId {
        self.task.owner()
    }
    /// Takes held permit `i` out of the owner (in its poll), for use elsewhere.
    fn take_held(&mut self, i: usize) -> OwnedSemaphorePermit {
        let out: Rc<RefCell<Option<OwnedSemaphorePermit>>> = Rc::default();
        let slot = out.clone();
        self.run(move |state, _| {
            *slot.borrow_mut() = Some(state.held.remove(i));
            vec![]
        });
        out.borrow_mut().take().expect("the command ran")
    }
    /// Runs `command` inside this owner's poll.
    fn run(
        &mut self,
        command: impl FnOnce(&mut OwnerState, &mut Context<'_>) -> Vec<Seen> + 'static,
    ) -> Vec<Seen> {
        *self.inbox.borrow_mut() = Some(Box::new(command));
        let polled = self.task.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending());
        std::mem::take(&mut *self.outbox.borrow_mut())
    }
}

/// Keeps an acquired permit as held. Owned permits may move (DESIGN.md 2b), so the owner
/// adopts it (in its poll) to answer for it: its exit with it then breaks the semaphore,
/// which is what the model checks.
fn keep(state: &mut OwnerState, permit: OwnedSemaphorePermit) {
    let mut permit = permit;
    permit.adopt().expect("a live owner adopts what it acquired");
    state.held.push(permit);
}

/// Polls every pending acquire once, in order; completed ones become held.
fn poll_all(state: &mut OwnerState, cx: &mut Context<'_>) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut still = Vec::new();
    for mut pending in std::mem::take(&mut state.pending) {
        match pending.as_mut().poll(cx) {
            Poll::Pending => {
                seen.push(Seen::Pending);
                still.push(pending);
            }
            Poll::Ready(result) => {
                seen.push(seen_acquire(&result));
                if let Ok(permit) = result {
                    keep(state, permit);
                }
            }
        }
    }
    state.pending = still;
    seen
}

// ---------------- the reference model ----------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Wait {
    Queued,
    Granted,
    Closed,
}

#[derive(Default)]
struct ModelOwner {
    pending: Vec<(u64, u32)>, // (ticket, permits)
    held: Vec<u32>,
    leaked: u32,
}

#[derive(Default)]
struct Model {
    available: usize,
    queue: VecDeque<(u64, u32)>,
    waits: std::collections::HashMap<u64, Wait>,
    next_ticket: u64,
    broken_by: Option<OwnerId>,
    closed: bool,
    owners: Vec<ModelOwner>,
}

impl Model {
    fn refuse(&self) -> Option<Seen> {
        if let Some(owner) = self.broken_by {
            Some(Seen::Broken(owner))
        } else if self.closed {
            Some(Seen::Closed)
        } else {
            None
        }
    }
    fn grant(&mut self) {
        while let Some(&(ticket, n)) = self.queue.front() {
            if self.broken_by.is_some() || self.available < n as usize {
                break;
            }
            self.available -= n as usize;
            self.queue.pop_front();
            self.waits.insert(ticket, Wait::Granted);
        }
    }
    fn release(&mut self, n: u32) {
        if self.broken_by.is_none() {
            self.available += n as usize;
            self.grant();
        }
    }
    fn try_acquire(&mut self, o: usize, n: u32) -> Seen {
        if let Some(seen) = self.refuse() {
            return seen;
        }
        if !self.queue.is_empty() || self.available < n as usize {
            return Seen::NoPermits;
        }
        self.available -= n as usize;
        self.owners[o].held.push(n);
        Seen::Ok
    }
    fn acquire(&mut self, o: usize, n: u32) -> Seen {
        match self.try_acquire(o, n) {
            Seen::NoPermits => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.queue.push_back((ticket, n));
                self.waits.insert(ticket, Wait::Queued);
                self.owners[o].pending.push((ticket, n));
                Seen::Pending
            }
            other => other,
        }
    }
    fn poll_all(&mut self, o: usize) -> Vec<Seen> {
        let mut seen = Vec::new();
        let mut still = Vec::new();
        for (ticket, n) in std::mem::take(&mut self.owners[o].pending) {
            let outcome = match (self.broken_by, self.waits[&ticket]) {
                (Some(owner), _) => Seen::Broken(owner),
                (None, Wait::Granted) => Seen::Ok,
                (None, Wait::Closed) => Seen::Closed,
                (None, Wait::Queued) => Seen::Pending,
            };
            match outcome {
                Seen::Pending => still.push((ticket, n)),
                Seen::Ok => {
                    self.waits.remove(&ticket);
                    self.owners[o].held.push(n);
                }
                _ => {
                    self.waits.remove(&ticket);
                }
            }
            seen.push(outcome);
        }
        self.owners[o].pending = still;
        seen
    }
    fn cancel(&mut self, o: usize, i: usize) {
        let (ticket, n) = self.owners[o].pending.remove(i);
        match self.waits.remove(&ticket) {
            Some(Wait::Queued) => {
                self.queue.retain(|&(t, _)| t != ticket);
                self.grant();
            }
            Some(Wait::Granted) => self.release(n),
            _ => {}
        }
    }
    fn exit(&mut self, o: usize, id: OwnerId) {
        // Dropping the task drops its pending acquires and held permits (in that order:
        // the body's fields), then the owner's exit abandons what it leaked.
        while !self.owners[o].pending.is_empty() {
            self.cancel(o, 0);
        }
        for n in std::mem::take(&mut self.owners[o].held) {
            self.release(n);
        }
        if std::mem::take(&mut self.owners[o].leaked) > 0 && self.broken_by.is_none() {
            self.broken_by = Some(id);
            self.queue.clear();
        }
    }
    fn close(&mut self) {
        self.closed = true;
        for (ticket, _) in self.queue.drain(..) {
            self.waits.insert(ticket, Wait::Closed);
        }
    }
}

fn check(initial: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let sem = Arc::new(Semaphore::new(initial));
    let mut owners: Vec<RealOwner> = (0..OWNERS).map(|_| RealOwner::new()).collect();
    let mut leaked: Vec<OwnedSemaphorePermit> = Vec::new();
    let mut model = Model { available: initial, ..Model::default() };
    model.owners = (0..OWNERS).map(|_| ModelOwner::default()).collect();

    for (step, op) in ops.iter().enumerate() {
        let (real, expected): (Vec<Seen>, Vec<Seen>) = match *op {
            Op::TryAcquire(o, n) => {
                let sem = sem.clone();
                let real = owners[o].run(move |state, _| {
                    vec![match sem.try_acquire_many_owned(n) {
                        Ok(permit) => {
                            keep(state, permit);
                            Seen::Ok
                        }
                        Err(TryAcquireError::NoPermits) => Seen::NoPermits,
                        Err(TryAcquireError::Closed) => Seen::Closed,
                        Err(TryAcquireError::Broken(err)) => Seen::Broken(err.owner()),
                        Err(other) => panic!("unexpected {other:?}"),
                    }]
                });
                (real, vec![model.try_acquire(o, n)])
            }
            Op::Acquire(o, n) => {
                let sem = sem.clone();
                let real = owners[o].run(move |state, cx| {
                    state.pending.push(Box::pin(sem.acquire_many_owned(n)));
                    let last = state.pending.len() - 1;
                    let mut fresh = state.pending.remove(last);
                    match fresh.as_mut().poll(cx) {
                        Poll::Pending => {
                            state.pending.push(fresh);
                            vec![Seen::Pending]
                        }
                        Poll::Ready(result) => {
                            let seen = seen_acquire(&result);
                            if let Ok(permit) = result {
                                keep(state, permit);
                            }
                            vec![seen]
                        }
                    }
                });
                (real, vec![model.acquire(o, n)])
            }
            Op::PollPending(o) => (owners[o].run(poll_all), model.poll_all(o)),
            Op::Release(o, i) => {
                if i >= model.owners[o].held.len() {
                    continue;
                }
                let n = model.owners[o].held.remove(i);
                owners[o].run(move |state, _| {
                    drop(state.held.remove(i));
                    vec![]
                });
                model.release(n);
                (vec![], vec![])
            }
            Op::ReleaseElsewhere(o, i) => {
                if i >= model.owners[o].held.len() {
                    continue;
                }
                let n = model.owners[o].held.remove(i);
                drop(owners[o].take_held(i)); // outside every poll
                model.release(n);
                (vec![], vec![])
            }
            Op::SplitElsewhere(o, i) => {
                if model.owners[o].held.get(i).is_none_or(|&n| n < 2) {
                    continue;
                }
                let n = model.owners[o].held.remove(i);
                model.owners[o].held.extend([n - 1, 1]);
                let mut permit = owners[o].take_held(i);
                let part = permit.split(1).expect("it holds at least 2");
                owners[o].run(move |state, _| {
                    state.held.extend([permit, part]);
                    vec![]
                });
                (vec![], vec![])
            }
            Op::HandTo(o, i, to) => {
                if i >= model.owners[o].held.len() {
                    continue;
                }
                let n = model.owners[o].held.remove(i);
                model.owners[to].held.push(n);
                let mut permit = owners[o].take_held(i);
                let target = owners[to].id();
                prop_assert_eq!(permit.hand_to(target), Ok(()), "step {}", step);
                prop_assert_eq!(permit.owner(), Some(target));
                owners[to].run(move |state, _| {
                    state.held.push(permit);
                    vec![]
                });
                (vec![], vec![])
            }
            Op::Cancel(o, i) => {
                if i >= model.owners[o].pending.len() {
                    continue;
                }
                owners[o].run(move |state, _| {
                    drop(state.pending.remove(i));
                    vec![]
                });
                model.cancel(o, i);
                (vec![], vec![])
            }
            Op::Leak(o, i) => {
                if i >= model.owners[o].held.len() {
                    continue;
                }
                let n = model.owners[o].held.remove(i);
                model.owners[o].leaked += n;
                leaked.push(owners[o].take_held(i));
                (vec![], vec![])
            }
            Op::Forget(o, i) => {
                // `forget`: the permits leave the pool for good; nothing is abandoned.
                if i >= model.owners[o].held.len() {
                    continue;
                }
                model.owners[o].held.remove(i);
                owners[o].run(move |state, _| {
                    state.held.remove(i).forget();
                    vec![]
                });
                (vec![], vec![])
            }
            Op::Exit(o) => {
                let id = owners[o].id();
                owners[o] = RealOwner::new(); // drops the old task: Cancelled
                model.exit(o, id);
                model.owners[o] = ModelOwner::default();
                (vec![], vec![])
            }
            Op::AddPermits(n) => {
                sem.add_permits(n);
                if model.broken_by.is_none() {
                    model.available += n;
                    model.grant();
                }
                (vec![], vec![])
            }
            Op::ForgetPermits(n) => {
                let real = sem.forget_permits(n);
                let expected = n.min(model.available);
                model.available -= expected;
                prop_assert_eq!(real, expected, "forget_permits at step {}", step);
                (vec![], vec![])
            }
            Op::Close => {
                sem.close();
                model.close();
                (vec![], vec![])
            }
        };
        prop_assert_eq!(&real, &expected, "step {}: {:?}", step, op);
        prop_assert_eq!(sem.available_permits(), model.available, "available after step {}: {:?}", step, op);
        prop_assert_eq!(
            sem.statistics().waiters(),
            model.queue.len(),
            "waiters after step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(sem.is_broken(), model.broken_by.is_some(), "broken after step {}: {:?}", step, op);
    }
    drop(leaked);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]
    #[test]
    fn semaphore_matches_the_reference_model(initial in 0..=4usize, ops in prop::collection::vec(op(), 1..60)) {
        check(initial, &ops)?;
    }
}
