//! Pool exhaustion, the most common real hang, and the watchdog that reports it while
//! nothing runs: two handlers each take a connection from a pool of two and then wait
//! for something that never comes; a third waits for a connection. Nothing is polled
//! any more, so no slow path runs and no lazy warning fires; the watchdog thread still
//! looks every period and names the waiter, the pool's `0 of 2 available` and both
//! holders with where they took their connection.
//!
//! ```text
//! cargo run --example pool_stall --features diagnostics
//! ```

use std::future::Future;
use std::sync::{Arc, mpsc};
use std::task::{Context, Waker};
use std::time::Duration;

use ownsync::diagnostics::Watchdog;
use ownsync::{AbandonPolicy, CapacityLimiter, Event, tracked};

fn main() {
    let pool = CapacityLimiter::with_name_and_policy(2, "db-pool", AbandonPolicy::Break);
    let never = Arc::new(Event::new());
    let handler = |pool: &CapacityLimiter| {
        let (pool, never) = (pool.clone(), never.clone());
        tracked(async move {
            let _connection = pool.acquire().await.unwrap();
            never.wait().await; // a reply that never comes
        })
    };
    let mut stuck = [Box::pin(handler(&pool)), Box::pin(handler(&pool))];
    let mut waiting = Box::pin(tracked({
        let pool = pool.clone();
        async move { drop(pool.acquire().await.unwrap()) }
    }));
    // An executor polls each task once; then it has nothing left to run: a stall.
    let mut cx = Context::from_waker(Waker::noop());
    for task in &mut stuck {
        assert!(task.as_mut().poll(&mut cx).is_pending());
    }
    assert!(waiting.as_mut().poll(&mut cx).is_pending());

    let (reports, received) = mpsc::channel();
    let watchdog = Watchdog::new(Duration::from_millis(50))
        .on_report(move |report| drop(reports.send(report.to_string())))
        .start();
    print!("{}", received.recv().expect("the watchdog reports the stall"));
    drop(watchdog);
}
