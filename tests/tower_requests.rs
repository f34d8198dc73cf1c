//! The tower layer runs each request as a tracked scope that holds the request's token:
//! a handler that leaks a guard, panics, or is cut short is caught per request, and what
//! the next requests see depends on the mode (`Reclaiming` by default: served, the token
//! reclaimed with a WARN; `Breaking`: 503-ready `Broken` errors naming the request, until
//! the limiter is repaired). The axum tests are in the benches crate.
#![cfg(feature = "tower")]

mod common;

#[cfg(feature = "tracing")]
#[path = "common/recorder.rs"]
mod recorder;

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;

use common::Polled;
use futures::executor::block_on;
use ownsync::tower::{BoxError, CapacityLimit, CapacityLimitLayer, GlobalCapacityLimitLayer};
use ownsync::{
    AbandonReason, AcquireError, CapacityLimiter, Mutex, Semaphore, TryAcquireError, TryLockError,
};
use tower::{Layer, Service, ServiceExt, service_fn};

type Handler = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<&'static str, Infallible>> + Send>> + Send>;

/// A service whose handler is `handler`.
fn service(
    handler: impl Fn() -> Pin<Box<dyn Future<Output = Result<&'static str, Infallible>> + Send>> + Send + 'static,
) -> impl Service<(), Response = &'static str, Error = Infallible, Future: Send> {
    let handler: Handler = Box::new(handler);
    service_fn(move |()| handler())
}

fn ok() -> impl Service<(), Response = &'static str, Error = Infallible, Future: Send> {
    service(|| Box::pin(async { Ok("ok") }))
}

fn panicking() -> impl Service<(), Response = &'static str, Error = Infallible, Future: Send> {
    service(|| Box::pin(async { panic!("a bug in the handler") }))
}

/// Starts one request (`poll_ready`, then `call`), returns the response future.
fn start<S: Service<()>>(service: &mut S) -> S::Future
where
    S::Error: std::fmt::Debug,
{
    block_on(service.ready()).unwrap();
    service.call(())
}

/// Runs a response to its end, which is a panic.
fn run_to_panic<F: Future>(response: F) {
    let unwound = catch_unwind(AssertUnwindSafe(|| block_on(response)));
    assert!(unwound.is_err(), "the handler panicked");
}

/// The reclaiming service's error type is the inner service's (here `Infallible`), as
/// tower's `ConcurrencyLimitLayer`'s is, so it goes wherever tower's layer goes.
/// Serializes this file's tests: `tracing` caches whether a call site is wanted when it
/// is first hit, and a test hitting the layer's WARN site on another thread while the
/// recording test installs its subscriber could leave that site off for it (seen once in
/// about seven runs: the recording test saw no event). Poisoning is ignored: a failed
/// test fails on its own.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn the_default_layer_keeps_the_inner_error_type_and_serves() {
    let _serial = serial();
    fn infallible<S: Service<(), Error = Infallible>>(service: S) -> S {
        service
    }
    let service = infallible(CapacityLimitLayer::new(2).layer(ok()));
    assert_eq!(block_on(service.oneshot(())), Ok("ok"));
    let global = infallible(GlobalCapacityLimitLayer::new(2).layer(ok()));
    assert_eq!(block_on(global.oneshot(())), Ok("ok"));
}

/// A handler that leaks a mutex guard: its request's scope exits holding it, so the
/// mutex breaks, naming that request (not the connection, not nobody); the layer's own
/// token came back and the next request is served.
#[test]
fn a_handler_that_leaks_a_guard_is_caught_when_its_request_ends() {
    let _serial = serial();
    let ledger = Arc::new(Mutex::new(0));
    let handler_ledger = ledger.clone();
    let mut limited = CapacityLimitLayer::new(1).layer(service(move || {
        let ledger = handler_ledger.clone();
        Box::pin(async move {
            std::mem::forget(ledger.lock().await.unwrap()); // the bug
            Ok("leaked")
        })
    }));
    let response = start(&mut limited);
    let request = response.owner();
    assert_eq!(block_on(response), Ok("leaked"));
    let Err(TryLockError::Broken(broken)) = ledger.try_lock() else {
        panic!("the leaked ledger must be broken");
    };
    assert_eq!((broken.owner(), broken.reason()), (request, AbandonReason::Exited));
    assert_eq!(limited.limiter().available_tokens(), 1, "the layer's token came back");
    assert!(!limited.limiter().is_broken());
}

/// A panicking handler, default mode: the request's scope exits (`Panicked`) holding the
/// request's token, which is reclaimed and counted as that request's abandonment; the
/// next requests are served.
#[test]
fn a_panicking_handler_in_the_default_mode_gives_its_token_back_and_later_requests_are_served() {
    let _serial = serial();
    let mut limited = CapacityLimitLayer::new(1).layer(panicking());
    let response = start(&mut limited);
    let request = response.owner();
    run_to_panic(response);
    let limiter = limited.limiter().clone();
    assert!(!limiter.is_broken());
    assert_eq!(limiter.available_tokens(), 1);
    assert_eq!(limiter.statistics().abandoned().count(), 1, "reclaimed, and counted");
    assert_eq!(limiter.statistics().abandoned().last(), Some((request, AbandonReason::Panicked)));
    // The next requests: admitted, each with the one token.
    for _ in 0..2 {
        run_to_panic(start(&mut limited));
    }
    assert_eq!(limiter.available_tokens(), 1);
    assert_eq!(limiter.statistics().abandoned().count(), 3);
}

/// With the `tracing` feature, each token reclaimed from a request is one WARN naming
/// the request and why (the core's own event about a reclaim is an INFO).
#[cfg(feature = "tracing")]
#[test]
fn a_token_reclaimed_from_a_request_is_a_warning() {
    let _serial = serial();
    let recorder = recorder::Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let mut limited = CapacityLimitLayer::new(1).layer(panicking());
        let response = start(&mut limited);
        let request = response.owner();
        run_to_panic(response);
        let warnings: Vec<_> =
            recorder.events().into_iter().filter(|seen| seen.level == tracing::Level::WARN).collect();
        let [warned] = warnings.as_slice() else { panic!("one WARN expected: {warnings:?}") };
        assert_eq!(warned.fields["owner"], request.to_string());
        assert_eq!(warned.fields["reason"], "panicked");
        assert!(warned.fields["message"].contains("reclaimed"), "{warned:?}");
    });
}

/// A panicking handler, breaking mode: the limiter breaks, and every later request is
/// refused at once with the error naming the request, until the limiter is repaired
/// through the layer.
#[test]
fn a_panicking_handler_in_the_breaking_mode_breaks_the_limiter_until_it_is_repaired() {
    let _serial = serial();
    let layer = CapacityLimitLayer::new(2).break_on_abandon();
    let mut limited = layer.layer(panicking());
    let response = start(&mut limited);
    let request = response.owner();
    run_to_panic(response);
    let refused: BoxError = block_on(limited.ready()).map(drop).unwrap_err();
    let Some(AcquireError::Broken(broken)) = refused.downcast_ref::<AcquireError>() else {
        panic!("expected Broken, got {refused}");
    };
    assert_eq!((broken.owner(), broken.reason()), (request, AbandonReason::Panicked));
    assert!(refused.to_string().contains(&request.to_string()), "the text names the request: {refused}");

    let limiters = layer.limiters();
    assert_eq!(limiters.len(), 1);
    assert_eq!(limiters[0].try_repair(), Ok(1));
    let mut served = layer.layer(ok()); // a service of the same layer, a limiter of its own
    assert_eq!(block_on(start(&mut served)).unwrap(), "ok");
    // The repaired one admits again.
    assert!(block_on(limited.ready()).is_ok());
}

/// A request cut short (an outer timeout drops its future) in the breaking mode: tokio's
/// layer would just give the token back, so this one does too, with no error for later
/// requests (C1). What the handler leaked before the cut is caught, naming the request
/// and `Cancelled`.
#[test]
fn a_request_cut_short_gives_its_token_back_and_its_leaks_are_caught() {
    let _serial = serial();
    let pool = Arc::new(CapacityLimiter::new(1));
    let (reached, at_await) = std::sync::mpsc::channel::<()>();
    let reached = std::sync::Mutex::new(reached);
    let handler_pool = pool.clone();
    let layer = CapacityLimitLayer::new(1).break_on_abandon();
    let mut limited = layer.layer(service(move || {
        let pool = handler_pool.clone();
        let reached = reached.lock().unwrap().clone();
        Box::pin(async move {
            pool.acquire().await.unwrap().detach(); // the bug: never given back
            reached.send(()).unwrap();
            std::future::pending::<()>().await;
            Ok("never")
        })
    }));
    let response = start(&mut limited);
    let request = response.owner();
    let mut response = Polled::new(response);
    assert!(response.is_pending());
    at_await.recv().unwrap();
    drop(response); // the timeout

    let limiter = limited.limiter().clone();
    assert!(!limiter.is_broken(), "a cut-short request is not an abandonment of its token");
    assert_eq!(limiter.available_tokens(), 1);
    let Err(TryAcquireError::Broken(broken)) = pool.try_acquire() else {
        panic!("the leaked pool token must have broken the pool");
    };
    assert_eq!((broken.owner(), broken.reason()), (request, AbandonReason::Cancelled));
    assert!(block_on(limited.ready()).is_ok(), "the next request is admitted");
}

/// C1: a handler that moves an owned permit into a spawned task (here a thread) that
/// outlives the request breaks nothing: the permit may have moved, so the request's end
/// only orphans it, and the thread's drop gives it back.
#[test]
fn a_handler_that_moves_an_owned_permit_away_breaks_nothing() {
    let _serial = serial();
    let pool = Arc::new(Semaphore::new(1));
    let (send_permit, permits) = std::sync::mpsc::channel();
    let send_permit = std::sync::Mutex::new(send_permit);
    let handler_pool = pool.clone();
    let mut limited = CapacityLimitLayer::new(1).break_on_abandon().layer(service(move || {
        let pool = handler_pool.clone();
        let send_permit = send_permit.lock().unwrap().clone();
        Box::pin(async move {
            send_permit.send(pool.acquire_owned().await.unwrap()).unwrap();
            Ok("moved")
        })
    }));
    // The worker receives the permit and keeps it past the request's end.
    let worker = std::thread::spawn(move || permits.recv().unwrap());
    let response = start(&mut limited);
    assert_eq!(block_on(response).unwrap(), "moved");
    let permit = worker.join().unwrap();
    assert!(!pool.is_broken() && !limited.limiter().is_broken());
    assert_eq!(pool.statistics().orphaned(), 1, "counted, not broken");
    drop(permit);
    assert_eq!((pool.available_permits(), pool.statistics().orphaned()), (1, 0));
    assert!(block_on(limited.ready()).is_ok());
}

/// A request holds its token from `poll_ready` to its end; one whose future is never
/// polled gives its token back when dropped.
#[test]
fn a_requests_token_is_held_by_the_request_and_an_unpolled_one_returns_it() {
    let _serial = serial();
    let limiter = CapacityLimiter::new(1);
    let mut limited = CapacityLimit::new(ok(), limiter.clone());
    drop(start(&mut limited)); // never polled
    assert_eq!(limiter.available_tokens(), 1);
    let response = start(&mut limited);
    assert_eq!(limiter.available_tokens(), 0);
    assert_eq!(block_on(response).unwrap(), "ok");
    assert_eq!(limiter.available_tokens(), 1);
}
