//! The watchdog's `WARN` events (features `diagnostics` and `tracing`): one per finding,
//! sent to the subscriber that was the default where the watchdog was started.
#![cfg(all(feature = "diagnostics", feature = "tracing"))]

mod common;

#[path = "common/recorder.rs"]
mod recorder;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::Polled;
use ownsync::diagnostics::Watchdog;
use ownsync::{Semaphore, tracked};
use recorder::Recorder;
use tracing::Level;

#[test]
fn the_watchdog_warns_of_a_lasting_wait_through_the_subscriber_it_was_started_under() {
    let recorder = Recorder::default();
    let sem = Arc::new(Semaphore::with_name(0, "traced-pool"));
    let (reports, received) = mpsc::channel();
    let watchdog = tracing::subscriber::with_default(recorder.clone(), || {
        Watchdog::new(Duration::from_millis(1))
            .overdue_after(Duration::ZERO)
            .on_report(move |report| drop(reports.send(report.to_string())))
            .start()
    });
    let waiter = tracked({
        let sem = sem.clone();
        async move { drop(sem.acquire().await.unwrap()) }
    });
    let waiter_id = waiter.owner();
    let mut waiter = Polled::new(waiter);
    assert!(waiter.is_pending());
    // The events of a report are emitted before its callback runs.
    received.recv_timeout(Duration::from_secs(60)).expect("a report");
    drop(watchdog);
    let warned = recorder
        .events()
        .into_iter()
        .filter(|event| event.level == Level::WARN && event.target == "ownsync")
        .filter_map(|event| event.fields.get("message").cloned())
        .find(|message| message.contains("\"traced-pool\""))
        .expect("a WARN event names the wait");
    assert!(warned.starts_with(&format!("watchdog: {waiter_id} has waited ")), "{warned}");
    assert!(warned.contains("for semaphore \"traced-pool\" (0 of 0 available)"), "{warned}");
    sem.add_permits(1);
    waiter.ready();
}
