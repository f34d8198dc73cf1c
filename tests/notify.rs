//! `ownsync::Notify` against tokio's `Notify` semantics: the scenarios of tokio's own
//! notify tests (tests/sync_notify.rs there), rewritten on this crate's hand-polled
//! futures: a stored permit (one at most), FIFO `notify_one`, LIFO `notify_last`,
//! `notify_waiters` for every future created before it and no permit, `enable`, and a
//! dropped notified future passing its `notify_one` on.

mod common;

use std::pin::pin;
use std::sync::Arc;

use common::Polled;
use ownsync::Notify;

#[test]
fn notify_one_wakes_a_waiter() {
    let notify = Notify::new();
    let mut notified = Polled::new(notify.notified());
    assert!(notified.is_pending());
    notify.notify_one();
    assert_eq!(notified.wakes(), 1);
    notified.ready();
}

#[test]
fn notify_one_with_no_waiter_stores_one_permit() {
    let notify = Notify::new();
    notify.notify_one();
    notify.notify_one(); // still one permit
    Polled::new(notify.notified()).ready();
    assert!(Polled::new(notify.notified()).is_pending());
}

#[test]
fn notify_one_wakes_the_first_waiter_and_notify_last_the_last() {
    let notify = Notify::new();
    let mut first = Polled::new(notify.notified());
    let mut second = Polled::new(notify.notified());
    let mut third = Polled::new(notify.notified());
    assert!(first.is_pending() && second.is_pending() && third.is_pending());
    notify.notify_one();
    assert!(second.is_pending() && third.is_pending());
    first.ready();
    notify.notify_last();
    assert!(second.is_pending());
    third.ready();
    notify.notify_one();
    second.ready();
}

#[test]
fn notify_waiters_wakes_every_waiter_and_stores_no_permit() {
    let notify = Notify::new();
    let mut first = Polled::new(notify.notified());
    let mut second = Polled::new(notify.notified());
    assert!(first.is_pending() && second.is_pending());
    notify.notify_waiters();
    assert_eq!((first.wakes(), second.wakes()), (1, 1));
    first.ready();
    second.ready();
    assert!(Polled::new(notify.notified()).is_pending(), "no permit stored");
}

#[test]
fn notify_waiters_completes_a_future_created_before_it_even_unpolled() {
    let notify = Notify::new();
    let mut before = Polled::new(notify.notified());
    notify.notify_waiters();
    let mut after = Polled::new(notify.notified());
    before.ready();
    assert!(after.is_pending());
}

#[test]
fn notify_waiters_leaves_the_stored_permit_alone() {
    let notify = Notify::new();
    notify.notify_one();
    notify.notify_waiters();
    Polled::new(notify.notified()).ready(); // the permit of notify_one
    assert!(Polled::new(notify.notified()).is_pending());
}

#[test]
fn a_dropped_notified_future_passes_its_notify_one_on() {
    let notify = Notify::new();
    let mut first = Polled::new(notify.notified());
    let mut second = Polled::new(notify.notified());
    assert!(first.is_pending() && second.is_pending());
    notify.notify_one(); // goes to `first`
    drop(first); // which never returned it: `second` gets it
    assert_eq!(second.wakes(), 1);
    second.ready();
}

#[test]
fn a_dropped_notified_future_with_no_one_to_pass_to_stores_the_permit() {
    let notify = Notify::new();
    let mut only = Polled::new(notify.notified());
    assert!(only.is_pending());
    notify.notify_one();
    drop(only);
    Polled::new(notify.notified()).ready();
}

#[test]
fn a_dropped_waiter_leaves_the_queue() {
    let notify = Notify::new();
    let mut first = Polled::new(notify.notified());
    let mut second = Polled::new(notify.notified());
    assert!(first.is_pending() && second.is_pending());
    drop(first);
    notify.notify_one();
    second.ready();
}

#[test]
fn a_notify_waiters_notification_is_not_passed_on() {
    let notify = Notify::new();
    let mut first = Polled::new(notify.notified());
    assert!(first.is_pending());
    notify.notify_waiters();
    let mut later = Polled::new(notify.notified());
    assert!(later.is_pending());
    drop(first);
    assert_eq!(later.wakes(), 0);
    assert!(later.is_pending());
}

#[test]
fn enable_registers_without_polling_and_consumes_a_permit() {
    let notify = Notify::new();
    let mut enabled = pin!(notify.notified());
    assert!(!enabled.as_mut().enable());
    notify.notify_one(); // an enabled future is a waiter: it gets the notification
    assert!(Polled::new(notify.notified()).is_pending(), "the notification was not stored as a permit");
    futures::executor::block_on(enabled);

    notify.notify_one();
    let mut with_permit = pin!(notify.notified());
    assert!(with_permit.as_mut().enable(), "enable consumes the stored permit");
    futures::executor::block_on(with_permit);
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    let notify = Notify::new();
    let mut notified = Polled::new(notify.notified());
    assert!(notified.is_pending());
    let (poll, new_waker) = notified.poll_with_new_waker();
    assert!(poll.is_pending());
    notify.notify_one();
    assert_eq!(new_waker.count(), 1);
    notified.ready();
}

#[test]
fn a_static_notify_works() {
    static NOTIFY: Notify = Notify::const_new();
    NOTIFY.notify_one();
    Polled::new(NOTIFY.notified()).ready();
}

#[test]
fn notify_one_across_threads_loses_no_notification() {
    // Each round the notifier notifies once, whether the waiter is already queued or not
    // yet (then the permit waits for it), and waits for the waiter's answer.
    let notify = Arc::new(Notify::new());
    let (answer, answers) = std::sync::mpsc::channel();
    let rounds = 1000;
    let waiter = std::thread::spawn({
        let notify = notify.clone();
        move || {
            for round in 0..rounds {
                futures::executor::block_on(notify.notified());
                answer.send(round).unwrap();
            }
        }
    });
    for round in 0..rounds {
        notify.notify_one();
        assert_eq!(answers.recv().unwrap(), round);
    }
    waiter.join().unwrap();
}
