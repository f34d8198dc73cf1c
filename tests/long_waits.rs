//! The long-wait report (`ownsync::diagnostics::set_long_wait_warning`): once a wait, or
//! an exclusive hold that others wait for, lasts past the threshold, one `WARN` event
//! names its owner and site. Checked lazily, when the primitive is next touched. A test
//! binary of its own: the threshold is process-wide.
#![cfg(feature = "tracing")]

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::time::Duration;

use common::Polled;
use ownsync::{Event, Mutex, tracked};
use recorder::Recorder;
use tracing::Level;

#[test]
fn a_long_wait_and_the_hold_it_waits_for_are_reported_once_each() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let mutex = Mutex::with_name((), "ledger");
        let release = Event::new();
        let holder = tracked(async {
            let _guard = mutex.lock().await.unwrap();
            release.wait().await;
        });
        let holder_id = holder.owner();
        let mut holder = Polled::new(holder);
        assert!(holder.is_pending());
        let mut first = Polled::new(tracked(async { mutex.lock().await.map(drop) }));
        assert!(first.is_pending());
        assert!(recorder.events().is_empty(), "off by default");

        // Zero: every wait and hold has lasted long enough by the next check.
        ownsync::diagnostics::set_long_wait_warning(Some(Duration::ZERO));
        let mut second = Polled::new(mutex.lock()); // the next touch of the slow path
        let line = line!() - 1;
        assert!(second.is_pending());
        let events = recorder.events();
        assert!(events.iter().all(|event| event.level == Level::WARN && event.target == "ownsync"));
        let hold: Vec<_> = events.iter().filter(|e| e.fields["message"].contains("long hold")).collect();
        assert_eq!(hold.len(), 1, "{events:?}");
        assert_eq!(hold[0].fields["owner"], holder_id.to_string());
        assert!(hold[0].fields["site"].starts_with("tests/long_waits.rs:"), "{events:?}");
        assert_eq!(hold[0].fields["waiters"], "2");
        let waits: Vec<_> = events.iter().filter(|e| e.fields["message"].contains("long wait")).collect();
        assert_eq!(waits.len(), 2, "both waiters, the new one too: {events:?}");
        assert!(
            waits.iter().any(|e| e.fields["site"] == format!("tests/long_waits.rs:{line}:44")),
            "{events:?}"
        );
        assert_eq!(waits[0].fields["name"], "ledger");

        // Touched again: nothing new to report.
        assert!(first.is_pending());
        let _ = mutex.statistics();
        assert_eq!(recorder.events().len(), 3, "once per wait and per hold");

        // Handed to `first`: a new hold, reported once when next checked.
        release.set();
        holder.ready();
        let _ = mutex.statistics();
        let holds =
            recorder.events().into_iter().filter(|e| e.fields["message"].contains("long hold")).count();
        assert_eq!(holds, 2, "the hand-off began a new hold");
        assert!(first.ready().is_ok());
        assert!(second.ready().is_ok());
        ownsync::diagnostics::set_long_wait_warning(None);
    });
}
