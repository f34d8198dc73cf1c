//! One case's run: the crate driven by hand beside the model, step by step.

use std::task::{Context, Poll, Waker};

use ownsync::{AbandonReason, OwnerId, RepairError, tracked};

use crate::model::{self, Model, Prim, Seen, What};
use crate::ops::{ExitHow, OUTSIDE, OWNERS, Op, ThreadEnd, Who};
use crate::real::{
    Acquiring, Prims, RealHold, RealOwner, acquire_future, blocking_acquire, seen_acquire, seen_hand_over,
    seen_try_lock, try_acquire,
};

/// A queued acquire: the real future, the model's ticket, who it registers to, and
/// whether it is owned.
pub(crate) struct Waiting<'p> {
    pub(crate) future: Acquiring<'p>,
    pub(crate) ticket: u64,
    /// A condition's waiter.
    pub(crate) cond: bool,
    pub(crate) owner: Option<OwnerId>,
    pub(crate) moves: bool,
}

pub(crate) struct Run<'p> {
    pub(crate) prims: &'p Prims,
    pub(crate) owners: Vec<RealOwner<'p>>,
    /// Per owner slot, and `OUTSIDE`.
    pub(crate) waiting: Vec<Vec<Waiting<'p>>>,
    pub(crate) holds: Vec<RealHold<'p>>,
    pub(crate) leaked: Vec<RealHold<'p>>,
    /// Tokens released on their borrower's behalf: dropping them releases nothing.
    pub(crate) spent: Vec<RealHold<'p>>,
    /// Owners that exited, newest last.
    pub(crate) gone: Vec<OwnerId>,
    pub(crate) model: Model,
    /// The test thread's owner id (who calls outside every poll).
    pub(crate) here: OwnerId,
}

pub(crate) fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

impl<'p> Run<'p> {
    pub(crate) fn new(
        prims: &'p Prims,
        semaphore: usize,
        limiter: usize,
        reclaim: bool,
        strict: bool,
    ) -> Self {
        Run {
            prims,
            owners: (0..OWNERS).map(|_| RealOwner::new()).collect(),
            waiting: (0..=OWNERS).map(|_| Vec::new()).collect(),
            holds: Vec::new(),
            leaked: Vec::new(),
            spent: Vec::new(),
            gone: Vec::new(),
            model: Model::new(semaphore, limiter, reclaim, strict),
            here: ownsync::current_owner(),
        }
    }

    pub(crate) fn id(&self, o: usize) -> OwnerId {
        self.owners[o].id()
    }

    /// Runs one step on both; `None` if the step does not apply (it is skipped).
    pub(crate) fn step(&mut self, op: &Op) -> Option<(Vec<Seen>, Vec<Seen>)> {
        let prims = self.prims;
        let pick = |len: usize, i: usize| if len == 0 { None } else { Some(i % len) };
        Some(match *op {
            Op::Acquire { who, what, owned, wait } => {
                let explicit = match what {
                    What::TokenFor(o) => {
                        // A borrow on an owner's behalf is made by a manager, outside.
                        if !matches!(who, Who::Outside) {
                            return None;
                        }
                        Some(self.id(o))
                    }
                    _ => None,
                };
                match who {
                    Who::Outside => {
                        let key = self.model.borrow_key(what, explicit);
                        let expected = match key {
                            Err(refused) => (refused, None),
                            Ok(key) => self.model.acquire(what, explicit, key, owned, wait),
                        };
                        let real = if wait {
                            let mut future = acquire_future(prims, what, owned, explicit);
                            match future.as_mut().poll(&mut noop_cx()) {
                                Poll::Pending => {
                                    let ticket = expected.1.unwrap_or(u64::MAX);
                                    self.waiting[OUTSIDE].push(Waiting {
                                        future,
                                        ticket,
                                        cond: false,
                                        owner: explicit,
                                        moves: owned,
                                    });
                                    Seen::Pending
                                }
                                Poll::Ready(result) => self.keep(result),
                            }
                        } else {
                            let result = try_acquire(prims, what, owned, explicit);
                            self.keep(result)
                        };
                        (vec![real], vec![expected.0])
                    }
                    Who::Owner(o) => {
                        let id = self.id(o);
                        let key = self.model.borrow_key(what, Some(id));
                        let expected = match key {
                            Err(refused) => (refused, None),
                            Ok(key) => self.model.acquire(what, Some(id), key, owned, wait),
                        };
                        let result = self.owners[o].within(move |cx| {
                            if wait {
                                let mut future = acquire_future(prims, what, owned, None);
                                match future.as_mut().poll(cx) {
                                    Poll::Pending => Err(future),
                                    Poll::Ready(result) => Ok(result),
                                }
                            } else {
                                Ok(try_acquire(prims, what, owned, None))
                            }
                        });
                        let real = match result {
                            Err(future) => {
                                let ticket = expected.1.unwrap_or(u64::MAX);
                                self.waiting[o].push(Waiting {
                                    future,
                                    ticket,
                                    cond: false,
                                    owner: Some(id),
                                    moves: owned,
                                });
                                Seen::Pending
                            }
                            Ok(result) => self.keep(result),
                        };
                        (vec![real], vec![expected.0])
                    }
                    Who::Nested(o, depth) => {
                        let enclosing = self.id(o);
                        let inner = tracked(async move { try_acquire(prims, what, owned, None) });
                        let inner_id = inner.owner();
                        let (result, middle_id) = if depth == 1 {
                            let mut scope = Box::pin(inner);
                            (self.owners[o].within(move |cx| expect_ready(scope.as_mut().poll(cx))), None)
                        } else {
                            let middle = tracked(inner);
                            let middle_id = middle.owner();
                            let mut scope = Box::pin(middle);
                            (
                                self.owners[o].within(move |cx| expect_ready(scope.as_mut().poll(cx))),
                                Some(middle_id),
                            )
                        };
                        // A token borrows as the scope (listed under its id, forwarded
                        // with it, forgotten when the enclosing owner's exit abandons it).
                        let key = self.model.borrow_key(what, Some(inner_id)).expect("a call");
                        let expected = self.model.acquire(what, Some(inner_id), key, owned, false).0;
                        match middle_id {
                            None => self.model.on_scope_complete(inner_id, enclosing),
                            Some(middle) => {
                                self.model.on_scope_complete(inner_id, middle);
                                self.model.on_scope_complete(middle, enclosing);
                            }
                        }
                        let real = self.keep(result);
                        (vec![real], vec![expected])
                    }
                }
            }
            Op::Poll(slot) => {
                let waiting = std::mem::take(&mut self.waiting[slot]);
                let mut real = Vec::new();
                let mut expected = Vec::new();
                let mut still = Vec::new();
                let mut done = Vec::new();
                let polled: Vec<(Waiting<'p>, Poll<Result<RealHold<'p>, Seen>>)> = if slot == OUTSIDE {
                    waiting
                        .into_iter()
                        .map(|mut w| {
                            let poll = w.future.as_mut().poll(&mut noop_cx());
                            (w, poll)
                        })
                        .collect()
                } else {
                    self.owners[slot].within(move |cx| {
                        waiting
                            .into_iter()
                            .map(|mut w| {
                                let poll = w.future.as_mut().poll(cx);
                                (w, poll)
                            })
                            .collect()
                    })
                };
                let context = (slot != OUTSIDE).then(|| self.id(slot));
                for (w, poll) in polled {
                    // Released on its borrower's behalf since its grant: a spent token.
                    let spent = !w.cond && self.model.spent.contains_key(&w.ticket);
                    expected.push(if w.cond {
                        self.model.poll_cond(w.ticket, context)
                    } else {
                        self.model.poll_acquire(w.ticket, w.owner, w.moves)
                    });
                    match poll {
                        Poll::Pending => {
                            real.push(Seen::Pending);
                            still.push(w);
                        }
                        Poll::Ready(Ok(hold)) if spent => {
                            done.push(w.future);
                            self.spent.push(hold);
                            real.push(Seen::Ok);
                        }
                        Poll::Ready(result) => {
                            done.push(w.future);
                            real.push(self.keep(result));
                        }
                    }
                }
                self.waiting[slot] = still;
                drop(done);
                (real, expected)
            }
            Op::Cancel(slot, i) => {
                let i = pick(self.waiting[slot].len(), i)?;
                let w = self.waiting[slot].remove(i);
                self.cancel_in_model(&w);
                if slot == OUTSIDE {
                    drop(w);
                } else {
                    self.owners[slot].within(move |_| drop(w));
                }
                (vec![], vec![])
            }
            Op::Release(h, at) => {
                let h = pick(self.holds.len(), h)?;
                let hold = self.holds.remove(h);
                self.model.on_release(h);
                match at {
                    None => drop(hold),
                    Some(o) => self.owners[o].within(move |_| drop(hold)),
                }
                (vec![], vec![])
            }
            Op::Leak(h) => {
                let h = pick(self.holds.len(), h)?;
                self.leaked.push(self.holds.remove(h));
                self.model.leak(h);
                (vec![], vec![])
            }
            Op::PanicDrop(o, h) => {
                let h = pick(self.holds.len(), h)?;
                let id = self.id(o);
                self.cancel_waiting(o);
                let hold = self.holds.remove(h);
                self.model.on_panic_drop(h, id);
                self.owners[o].panic_holding(Some(hold));
                self.model.on_exit(id, AbandonReason::Panicked);
                self.replace_owner(o, id);
                (vec![], vec![])
            }
            Op::Split(h) => {
                let h = pick(self.holds.len(), h)?;
                if !self.holds[h].is_permit() || self.model.holds[h].permits < 2 {
                    return None;
                }
                let split = self.model.on_split(h, 1);
                let part = self.holds[h].split();
                prop_assert_eq_opt(split, part.is_some())?;
                self.holds.extend(part);
                (vec![], vec![])
            }
            Op::Merge(h) => {
                let h = pick(self.holds.len(), h)?;
                if !self.holds[h].is_permit() {
                    return None;
                }
                let other =
                    (0..self.holds.len()).find(|&j| j != h && self.holds[j].same_kind(&self.holds[h]))?;
                let taken = self.holds.remove(other);
                let into = if other < h { h - 1 } else { h };
                assert!(self.holds[into].merge(taken).is_ok(), "same kind");
                self.model.on_merge(h, other);
                (vec![], vec![])
            }
            Op::Forget(h) => {
                let h = pick(self.holds.len(), h)?;
                let forgotten = match self.holds.remove(h) {
                    RealHold::Permit(p) => {
                        p.forget();
                        true
                    }
                    RealHold::PermitOwned(p) => {
                        p.forget();
                        true
                    }
                    other => {
                        self.holds.insert(h, other);
                        false
                    }
                };
                if !forgotten {
                    return None;
                }
                self.model.on_forget(h);
                (vec![], vec![])
            }
            Op::HandTo(h, to) => {
                let h = pick(self.holds.len(), h)?;
                let target = match to {
                    Some(o) => self.id(o),
                    None => *self.gone.last()?,
                };
                let mut real = seen_hand_over(self.holds[h].hand_to(target));
                let expected = self.model.on_hand_to(h, target);
                real = either(real, &expected);
                (vec![real], vec![expected])
            }
            Op::Adopt(h, o) => {
                let h = pick(self.holds.len(), h)?;
                let id = self.id(o);
                let mut hold = self.holds.remove(h);
                let (hold, real) = self.owners[o].within(move |_| {
                    let result = hold.adopt();
                    (hold, seen_hand_over(result))
                });
                self.holds.insert(h, hold);
                let expected = self.model.on_hand_to(h, id);
                (vec![either(real, &expected)], vec![expected])
            }
            Op::IntoOwned(h) => {
                let h = pick(self.holds.len(), h)?;
                match self.holds.remove(h) {
                    RealHold::Token(t) => self.holds.insert(h, RealHold::Token(t.into_owned())),
                    other => {
                        self.holds.insert(h, other);
                        return None;
                    }
                }
                self.model.on_into_owned(h);
                (vec![], vec![])
            }
            Op::Downgrade(h) => {
                let h = pick(self.holds.len(), h)?;
                match self.holds.remove(h) {
                    RealHold::Write(g) => self.holds.insert(h, RealHold::Read(g.downgrade())),
                    RealHold::WriteOwned(g) => self.holds.insert(h, RealHold::ReadOwned(g.downgrade())),
                    other => {
                        self.holds.insert(h, other);
                        return None;
                    }
                }
                self.model.on_downgrade(h);
                (vec![], vec![])
            }
            Op::Exit(o, how) => {
                let id = self.id(o);
                self.cancel_waiting(o);
                let reason = match how {
                    ExitHow::Completes => {
                        self.owners[o].complete();
                        AbandonReason::Exited
                    }
                    ExitHow::Cancelled => {
                        self.owners[o].cancel();
                        AbandonReason::Cancelled
                    }
                    ExitHow::Panics => {
                        self.owners[o].panic_holding(None);
                        AbandonReason::Panicked
                    }
                };
                self.model.on_exit(id, reason);
                self.replace_owner(o, id);
                (vec![], vec![])
            }
            Op::ManualAcquire(o) => {
                let id = self.id(o);
                let real = self.owners[o].within(move |_| match prims.mutex.try_acquire() {
                    Ok(()) => Seen::Ok,
                    Err(err) => seen_try_lock(err),
                });
                (vec![real], vec![self.model.manual_try_acquire(id)])
            }
            Op::ManualRelease(who) => {
                let (real, caller) = match who {
                    None => (prims.mutex.release(), self.here),
                    Some(o) => (self.owners[o].within(move |_| prims.mutex.release()), self.id(o)),
                };
                let real = match real {
                    Ok(()) => Seen::Ok,
                    Err(ownsync::ReleaseError::NotHeld) => Seen::NotHeld,
                    Err(ownsync::ReleaseError::NotOwner { .. }) => Seen::NotOwner,
                    Err(other) => panic!("unexpected {other:?}"),
                };
                (vec![real], vec![self.model.manual_release(caller)])
            }
            Op::ReleaseOnBehalf(o) => {
                let id = self.id(o);
                let real = match prims.limiter.release_on_behalf_of(id) {
                    Ok(()) => Seen::Ok,
                    Err(ownsync::ReleaseError::NotHeld) => Seen::NotHeld,
                    Err(ownsync::ReleaseError::NotOwner { .. }) => Seen::NotOwner,
                    Err(other) => panic!("unexpected {other:?}"),
                };
                let (expected, index) = self.model.release_on_behalf_of(id);
                if let Some(index) = index {
                    // Its token object releases nothing from now on.
                    self.spent.push(self.holds.remove(index));
                }
                (vec![real], vec![expected])
            }
            Op::Repair(prim, mark) => {
                // KNOWN DEFECTS (see `Model::set_total`, `Model::on_forget`).
                if self.model.repair_hits_defect[prim.index()] {
                    return None;
                }
                let real = match prim {
                    Prim::Semaphore => counted_repair(prims.semaphore.try_repair()),
                    Prim::Limiter => counted_repair(prims.limiter.try_repair()),
                    Prim::Mutex => repaired(prims.mutex.try_repair().map(|guard| {
                        if mark {
                            guard.mark_consistent();
                        }
                    })),
                    _ => repaired(prims.rwlock.try_repair().map(|guard| {
                        if mark {
                            guard.mark_consistent();
                        }
                    })),
                };
                (vec![real], vec![self.model.on_repair(prim, mark)])
            }
            Op::Thread(ref whats, manual, end) => self.thread(whats, manual, end),
            Op::CondWait(h, at) => {
                let h = pick(self.holds.len(), h)?;
                if !matches!(self.holds[h], RealHold::Mutex(_)) {
                    return None;
                }
                // KNOWN DEFECT (found by this model, `tests/model_findings.rs`): a guard
                // forwarded from a completed scope comes back from a condition wait
                // registered to whoever polls the wait (anonymous outside any owner), not
                // to the enclosing owner that answered for it; not waited with here.
                if matches!(self.model.holds[h].state, model::HoldState::Forwarded { .. }) {
                    return None;
                }
                let RealHold::Mutex(guard) = self.holds.remove(h) else { unreachable!("checked") };
                let context = at.map(|o| self.id(o));
                let (expected, ticket) = self.model.cond_wait(h, context);
                let future: Acquiring<'p> = Box::pin(async move {
                    prims.cond.wait(guard).await.map(RealHold::Mutex).map_err(seen_acquire)
                });
                let first_poll =
                    move |mut future: Acquiring<'p>, cx: &mut Context<'_>| match future.as_mut().poll(cx) {
                        Poll::Pending => Err(future),
                        Poll::Ready(result) => Ok(result),
                    };
                let result = match at {
                    None => first_poll(future, &mut noop_cx()),
                    Some(o) => self.owners[o].within(move |cx| first_poll(future, cx)),
                };
                let real = match result {
                    Err(future) => {
                        let ticket = ticket.unwrap_or(u64::MAX);
                        let slot = at.unwrap_or(OUTSIDE);
                        self.waiting[slot].push(Waiting {
                            future,
                            ticket,
                            cond: true,
                            owner: None,
                            moves: false,
                        });
                        Seen::Pending
                    }
                    Ok(result) => self.keep(result),
                };
                (vec![real], vec![expected])
            }
            Op::Notify(n) => {
                prims.cond.notify(n);
                self.model.notify(n);
                (vec![], vec![])
            }
            Op::SetTotal(total) => {
                prims.limiter.set_total_tokens(total);
                self.model.set_total(total);
                (vec![], vec![])
            }
            Op::AddPermits(n) => {
                prims.semaphore.add_permits(n);
                self.model.add_permits(n);
                (vec![], vec![])
            }
            Op::ForgetPermits(n) => {
                let real = prims.semaphore.forget_permits(n);
                (vec![Seen::Took(real)], vec![Seen::Took(self.model.forget_permits(n))])
            }
            Op::Close => {
                prims.semaphore.close();
                self.model.close();
                (vec![], vec![])
            }
            Op::CancelHolding(o, h) => {
                let h = pick(self.holds.len(), h)?;
                let id = self.id(o);
                self.cancel_waiting(o);
                let hold = self.holds.remove(h);
                self.model.on_cancel_holding(h, id);
                self.owners[o].cancel_holding(hold);
                self.replace_owner(o, id);
                (vec![], vec![])
            }
            Op::Section(o, write, cut_short) => {
                let id = self.id(o);
                let expected =
                    self.model.with_section(if write { What::Write } else { What::Lock }, id, cut_short);
                let real = self.owners[o].within(move |cx| {
                    // The section waits for ever if it is to be cut short.
                    let section = async |_: &mut ()| {
                        if cut_short {
                            std::future::pending::<()>().await;
                        }
                    };
                    let poll = if write {
                        Box::pin(prims.rwlock.with_write(section)).as_mut().poll(cx)
                    } else {
                        Box::pin(prims.mutex.with_lock(section)).as_mut().poll(cx)
                    };
                    match poll {
                        Poll::Ready(Ok(())) => Seen::Ok,
                        Poll::Ready(Err(err)) => seen_acquire(err),
                        Poll::Pending => Seen::Pending,
                    }
                });
                (vec![real], vec![expected])
            }
        })
    }

    /// A std thread's life: it says who it is, takes what the model says it can take
    /// without blocking (RwLock guards are borrowed: the blocking entry points have no
    /// owned ones), ends as `end` says, and is joined (its exit has run by then).
    fn thread(&mut self, whats: &[(What, bool)], manual: bool, end: ThreadEnd) -> (Vec<Seen>, Vec<Seen>) {
        use std::sync::mpsc::channel;
        let prims = self.prims;
        let target = match end {
            ThreadEnd::HandsTo(o) => Some(self.id(o)),
            _ => None,
        };
        let (id_tx, id_rx) = channel();
        let (go_tx, go_rx) = channel::<(Vec<(What, bool)>, bool)>();
        let (out_tx, out_rx) = channel();
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                id_tx.send(ownsync::current_owner()).expect("the test listens");
                let (todo, manual) = go_rx.recv().expect("the test decides");
                let mut seen = Vec::new();
                let mut holds = Vec::new();
                for (what, owned) in todo {
                    match blocking_acquire(prims, what, owned) {
                        Ok(hold) => {
                            seen.push(Seen::Ok);
                            holds.push(hold);
                        }
                        Err(refused) => seen.push(refused),
                    }
                }
                if manual {
                    seen.push(match prims.mutex.blocking_acquire() {
                        Ok(()) => Seen::Ok,
                        Err(err) => seen_acquire(err),
                    });
                }
                if let Some(target) = target {
                    for hold in &mut holds {
                        seen.push(seen_hand_over(hold.hand_to(target)));
                    }
                }
                match end {
                    ThreadEnd::Releases => {
                        drop(holds);
                        out_tx.send((seen, Vec::new())).expect("the test listens");
                    }
                    _ => out_tx.send((seen, holds)).expect("the test listens"),
                }
            });
            let id = id_rx.recv().expect("the thread says who it is");
            // The model decides what the thread may take without blocking, and expects.
            let mut expected = Vec::new();
            let mut todo = Vec::new();
            for &(what, owned) in whats {
                if self.model.would_wait(what, Some(id)) {
                    continue;
                }
                let key = self.model.borrow_key(what, Some(id)).expect("a call borrows as the caller");
                // RwLock guards are borrowed: `blocking_read`/`blocking_write` only.
                let moves = owned && !matches!(what, What::Read | What::Write);
                expected.push(self.model.acquire(what, Some(id), key, moves, false).0);
                todo.push((what, owned));
            }
            let manual = manual && !self.model.would_wait(What::Lock, Some(id));
            if manual {
                expected.push(self.model.manual_try_acquire(id));
            }
            let first =
                self.model.holds.len() - expected.iter().take(todo.len()).filter(|s| **s == Seen::Ok).count();
            if let Some(target) = target {
                for index in first..self.model.holds.len() {
                    expected.push(self.model.on_hand_to(index, target));
                }
            }
            go_tx.send((todo, manual)).expect("the thread listens");
            let (real, holds) = out_rx.recv().expect("the thread reports");
            let real =
                real.into_iter().zip(&expected).map(|(real, expected)| either(real, expected)).collect();
            thread.join().expect("the thread ends");
            if let ThreadEnd::Releases = end {
                while self.model.holds.len() > first {
                    self.model.on_release(first);
                }
            }
            self.holds.extend(holds);
            self.model.on_exit(id, AbandonReason::Exited);
            self.gone.push(id);
            (real, expected)
        })
    }

    /// Keeps a successful acquire's hold; what the caller saw.
    fn keep(&mut self, result: Result<RealHold<'p>, Seen>) -> Seen {
        match result {
            Ok(hold) => {
                self.holds.push(hold);
                Seen::Ok
            }
            Err(seen) => seen,
        }
    }

    /// Drops owner `o`'s queued acquires, in its poll (what its exit does first).
    fn cancel_waiting(&mut self, o: usize) {
        let waiting = std::mem::take(&mut self.waiting[o]);
        for w in &waiting {
            self.cancel_in_model(w);
        }
        self.owners[o].within(move |_| drop(waiting));
    }

    fn cancel_in_model(&mut self, w: &Waiting<'p>) {
        if w.cond { self.model.cancel_cond(w.ticket) } else { self.model.cancel(w.ticket) }
    }

    fn replace_owner(&mut self, o: usize, id: OwnerId) {
        self.gone.push(id);
        self.owners[o] = RealOwner::new();
    }
}

/// A hand-over's result where the model allows either of some answers.
fn either(real: Seen, expected: &Seen) -> Seen {
    match (expected, &real) {
        (Seen::DeadToGone, Seen::OwnerGone | Seen::HandOverAbandoned)
        | (Seen::EmptyDead, Seen::Ok | Seen::OwnerGone | Seen::HandOverAbandoned) => expected.clone(),
        _ => real,
    }
}

pub(crate) fn expect_ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a try in a nested scope completes at once"),
    }
}

pub(crate) fn repaired(result: Result<(), RepairError>) -> Seen {
    match result {
        Ok(()) => Seen::Ok,
        Err(RepairError::NotBroken) => Seen::NotBroken,
        Err(RepairError::InUse { guards_out }) => Seen::InUse(guards_out),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

pub(crate) fn counted_repair(result: Result<usize, RepairError>) -> Seen {
    match result {
        Ok(given_back) => Seen::Repaired(given_back),
        Err(RepairError::NotBroken) => Seen::NotBroken,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

pub(crate) fn prop_assert_eq_opt(model: bool, real: bool) -> Option<()> {
    assert_eq!(model, real, "split");
    Some(())
}
