//! A two-step update cut short by a timeout at an `.await` (the GreptimeDB bug: a
//! sequence number persisted, then the in-memory counter bumped; a request timeout
//! between the two left them disagreeing, found only days later).
//!
//! The same update runs three times under `tokio::time::timeout`:
//! 1. with `tokio::sync::Mutex`: the next holder reads the torn state, and nothing says so;
//! 2. with ownsync's plain `lock()` in a tracked request: still torn (the lock is released,
//!    as tokio code expects), but counted in `statistics().cut_short()` and reported by a
//!    `tracing` warning naming the request and where it took the lock;
//! 3. with ownsync's `with_lock`: the mutex breaks, the next holder gets the error naming
//!    the request, and repairs the data before anyone uses it again.
//!
//! Run with `cargo run --example cancelled_update --features tracing`.

use std::future::Future;
use std::time::Duration;

use ownsync::{AcquireError, tracked};

/// Where the allocator is: the number written to the file, and the one in memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sequence {
    persisted: u64,
    in_memory: u64,
}

/// The flush of the file that is slow today: it never finishes before the timeout.
async fn slow_flush() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// Allocates the next number: write it to the file, wait for the flush, bump memory.
async fn allocate(sequence: &mut Sequence) -> u64 {
    sequence.persisted += 1;
    slow_flush().await; // a timeout drops the update here
    sequence.in_memory += 1;
    sequence.in_memory
}

/// Runs `request` under a short timeout, as a server's request layer would.
async fn with_timeout<F: Future>(request: F) {
    let timed_out = tokio::time::timeout(Duration::from_millis(10), request).await.is_err();
    assert!(timed_out, "the flush is slower than the timeout");
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).without_time().with_ansi(false).init();

    println!("1. tokio::sync::Mutex");
    let sequence = tokio::sync::Mutex::new(Sequence::default());
    with_timeout(async { allocate(&mut *sequence.lock().await).await }).await;
    let seen = *sequence.lock().await;
    println!("   the request timed out; the next holder reads {seen:?}, and nothing tells it");
    assert_ne!(seen.persisted, seen.in_memory);

    println!("2. ownsync::Mutex, plain lock() in a tracked request");
    let sequence = ownsync::Mutex::with_name(Sequence::default(), "sequence");
    let request = tracked(async { allocate(&mut sequence.lock().await.unwrap()).await });
    let request_id = request.owner();
    with_timeout(request).await;
    let cut_short = sequence.statistics().cut_short();
    let seen = *sequence.lock().await.expect("released, as tokio code expects");
    println!("   the request timed out; the next holder reads {seen:?}");
    println!(
        "   but it was counted: cut_short().count() = {}, the last by {}",
        cut_short.count(),
        request_id
    );
    println!("   {sequence:?}");
    assert_eq!(cut_short.count(), 1);

    println!("3. ownsync::Mutex::with_lock");
    let sequence = ownsync::Mutex::with_name(Sequence::default(), "sequence");
    let request = tracked(async { sequence.with_lock(async |sequence| allocate(sequence).await).await });
    with_timeout(request).await;
    match sequence.lock().await {
        Err(AcquireError::Broken(err)) => println!("   the next holder is told: {err}"),
        other => panic!("expected a broken mutex, got {other:?}"),
    }
    let mut repair = sequence.try_repair().expect("no guard is left");
    println!("   it repairs {:?}: the file is the truth", *repair);
    repair.in_memory = repair.persisted;
    repair.mark_consistent();
    let next = sequence.with_lock(async |sequence| sequence.persisted + 1).await.expect("whole again");
    println!("   repaired: {:?}; the next number is {next}", *sequence.lock().await.unwrap());
}
