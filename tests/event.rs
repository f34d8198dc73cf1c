//! Event (Trio's): set wakes every waiter, a wait after set returns at once, and a
//! waiter that is cancelled, leaked or panics changes nothing for the others; on tokio's
//! multi-thread runtime and futures' thread pool.

mod common;

use std::sync::Arc;

use ownsync::Event;

use common::{Polled, Rt};

/// Waits until `n` tasks are parked on `event` (the event the test waits on).
fn until_waiting(event: &Event, n: usize) {
    while event.statistics().waiters() != n {
        std::thread::yield_now();
    }
}

fn set_wakes_every_waiter<R: Rt>(rt: &R) {
    let event = Arc::new(Event::new());
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let event = event.clone();
            rt.spawn(async move {
                event.wait().await;
                i
            })
        })
        .collect();
    until_waiting(&event, 8);
    event.set();
    let woke: Vec<_> = waiters.into_iter().map(|w| rt.block_on(w.join()).unwrap()).collect();
    assert_eq!(woke, (0..8).collect::<Vec<_>>());
    assert_eq!(event.statistics().waiters(), 0);
}

/// A cancelled waiter and a panicking one leave the queue; the rest are still woken.
fn a_cancelled_or_panicking_waiter_changes_nothing_for_the_others<R: Rt>(rt: &R) {
    let event = Arc::new(Event::new());
    let cancelled = rt.spawn({
        let event = event.clone();
        async move { event.wait().await }
    });
    let (panic_now, panic_rx) = futures::channel::oneshot::channel::<()>();
    let panicking = rt.spawn({
        let event = event.clone();
        async move {
            use futures::FutureExt;
            futures::select_biased! {
                () = event.wait().fuse() => {},
                _ = panic_rx.fuse() => panic!("while waiting"),
            }
        }
    });
    let patient = rt.spawn({
        let event = event.clone();
        async move { event.wait().await }
    });
    until_waiting(&event, 3);
    rt.block_on(cancelled.abort().join());
    panic_now.send(()).unwrap();
    assert!(rt.block_on(panicking.join()).is_none(), "it panicked");
    until_waiting(&event, 1);
    event.set();
    rt.block_on(patient.join()).unwrap();
}

on_runtimes!(set_wakes_every_waiter, a_cancelled_or_panicking_waiter_changes_nothing_for_the_others);

#[test]
fn a_wait_after_set_returns_at_once() {
    let event = Event::new();
    event.set();
    let mut wait = Polled::new(event.wait());
    assert!(wait.poll().is_ready());
}

#[test]
fn a_leaked_waiter_does_not_stop_set_or_the_others() {
    let event = Event::new();
    let mut leaked = Box::pin(event.wait());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(leaked.as_mut().poll(&mut cx).is_pending());
    std::mem::forget(leaked);
    let mut other = Polled::new(event.wait());
    assert!(other.is_pending());
    event.set();
    assert_eq!(other.wakes(), 1);
    assert!(other.poll().is_ready());
}

#[test]
fn a_thread_blocks_until_another_sets_it() {
    let event = Arc::new(Event::new());
    let waiter = std::thread::spawn({
        let event = event.clone();
        move || event.blocking_wait()
    });
    until_waiting(&event, 1);
    event.set();
    waiter.join().unwrap();
    assert!(event.is_set());
    assert_eq!(format!("{event:?}"), "Event { set: true, waiters: 0 }");
}
