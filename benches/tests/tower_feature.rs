//! The `tower` feature: `CapacityLimitLayer` limits requests in flight per service like
//! tower's `ConcurrencyLimitLayer`, `GlobalCapacityLimitLayer` across services like its
//! `GlobalConcurrencyLimitLayer`; both fail fast once their limiter is broken, and the
//! limited service is `Sync`, so axum's `Router::layer` takes it.
#![cfg(feature = "tower")]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::convert::Infallible;

use common::Polled;
use futures::executor::block_on;
use ownsync::tower::{CapacityLimit, CapacityLimitLayer, GlobalCapacityLimitLayer};
use ownsync::{AbandonReason, AcquireError, CapacityLimiter, tracked};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone {
    service_fn(|n: u32| async move { Ok::<_, Infallible>(n) })
}

#[test]
fn requests_beyond_the_limit_wait_for_a_response_to_finish() {
    let limiter = CapacityLimiter::new(1);
    let mut first =
        ServiceBuilder::new().layer(GlobalCapacityLimitLayer::from_limiter(limiter.clone())).service(echo());
    let mut second = first.clone();

    block_on(first.ready()).unwrap();
    let response = first.call(1);
    assert_eq!(limiter.borrowed_tokens(), 1);

    // The clone has no token of its own: it waits.
    let mut ready = Polled::new(second.ready());
    assert!(ready.is_pending());
    assert_eq!(limiter.statistics().waiters(), 1);

    assert_eq!(block_on(response).unwrap(), 1);
    assert_eq!(ready.wakes(), 1, "finishing the response hands its token on");
    ready.ready().unwrap();
    drop(ready);
    assert_eq!(block_on(second.call(2)).unwrap(), 2);
    assert_eq!(limiter.available_tokens(), 1);
}

#[test]
fn a_dropped_response_or_service_returns_its_token() {
    let limiter = CapacityLimiter::new(1);
    let mut service = CapacityLimit::new(echo(), limiter.clone());
    block_on(service.ready()).unwrap();
    assert_eq!(limiter.borrowed_tokens(), 1, "poll_ready reserves the token");
    drop(service.call(1)); // cancelled before it ran
    assert_eq!(limiter.borrowed_tokens(), 0);
    block_on(service.ready()).unwrap();
    drop(service); // reserved, never called
    assert_eq!(limiter.borrowed_tokens(), 0);
}

#[test]
fn a_broken_limiter_fails_waiting_and_later_requests_at_once() {
    let limiter = CapacityLimiter::new(1);
    let mut service = CapacityLimit::new(echo(), limiter.clone());
    // Elsewhere, a tracked task borrows the only token and ends without returning it.
    let (finish, finished) = futures::channel::oneshot::channel::<()>();
    let leaker = tracked({
        let limiter = limiter.clone();
        async move {
            limiter.acquire().await.unwrap().detach();
            finished.await.unwrap();
        }
    });
    let owner = leaker.owner();
    let mut leaker = Polled::new(leaker);
    assert!(leaker.is_pending());

    let mut waiting = Polled::new(service.ready());
    assert!(waiting.is_pending());
    finish.send(()).unwrap();
    leaker.ready();

    let err = waiting.ready().map(drop).unwrap_err();
    let Some(AcquireError::Broken(broken)) = err.downcast_ref::<AcquireError>() else {
        panic!("expected a broken limiter, got {err}");
    };
    assert_eq!((broken.owner(), broken.reason()), (owner, AbandonReason::Exited));
    drop(waiting);
    // And every later request too, without waiting.
    let later = Polled::new(service.ready()).ready().map(drop).unwrap_err();
    assert!(matches!(later.downcast_ref::<AcquireError>(), Some(AcquireError::Broken(_))));
}

#[test]
#[should_panic(expected = "without a successful poll_ready")]
fn call_without_poll_ready_panics() {
    let mut service = CapacityLimit::new(echo(), CapacityLimiter::new(1));
    drop(service.call(1));
}

/// tower's `ConcurrencyLimitLayer::new(n)` gives each service its own limit; its global
/// layer shares one. The same here (issue: `new(n)` used to share).
#[test]
fn new_limits_each_service_and_the_global_layer_limits_them_together() {
    use tower::Layer;
    let per_service = CapacityLimitLayer::new(1);
    let (mut a, mut b) = (per_service.layer(echo()), per_service.layer(echo()));
    assert!(Polled::new(a.ready()).poll().is_ready());
    assert!(Polled::new(b.ready()).poll().is_ready(), "b has its own limiter");

    let global = GlobalCapacityLimitLayer::new(1);
    let (mut a, mut b) = (global.layer(echo()), global.layer(echo()));
    assert!(Polled::new(a.ready()).poll().is_ready());
    assert!(Polled::new(b.ready()).is_pending(), "one token for both");
    assert_eq!(global.limiter().borrowed_tokens(), 1);
}

/// axum 0.8's `Router::layer` takes the default layer as it takes tower's
/// `ConcurrencyLimitLayer`: no error handler, since its error is the route's own
/// (`Infallible`); the limited service is `Sync`; the app serves.
#[test]
fn an_axum_router_takes_the_layer_as_it_takes_towers_and_serves() {
    fn assert_sync<T: Sync>(_: &T) {}
    assert_sync(&tower::Layer::layer(&CapacityLimitLayer::new(1), echo()));
    let ours = axum::Router::new().route("/", get(|| async { "hello" })).layer(CapacityLimitLayer::new(2));
    let towers = axum::Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(tower::limit::ConcurrencyLimitLayer::new(2));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    for app in [ours, towers] {
        let (status, body) = runtime.block_on(request(app, "/"));
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }
}

/// One GET through `app`: the status and the body.
async fn request(app: axum::Router, path: &str) -> (StatusCode, String) {
    let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// An axum app's misbehaving routes: `/leak` leaks a guard of the app's ledger, `/panic`
/// panics, `/slow` waits for ever (an outer timeout cuts it short), `/` serves.
fn misbehaving_routes(ledger: &Arc<ownsync::Mutex<u32>>) -> axum::Router {
    let leaker = ledger.clone();
    axum::Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/leak",
            get(move || async move {
                std::mem::forget(leaker.lock().await.unwrap()); // the bug
                "leaked"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if ledger_is_fine() {
                    panic!("a bug in the handler");
                }
                "unreachable"
            }),
        )
        .route("/slow", get(std::future::pending::<&str>))
}

/// Always true; keeps the panicking handler's return type a response.
fn ledger_is_fine() -> bool {
    std::hint::black_box(true)
}

/// Sends `path` to `app`, expecting the handler to panic.
fn request_that_panics(runtime: &tokio::runtime::Runtime, app: &axum::Router, path: &str) {
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(request(app.clone(), path));
    }));
    assert!(unwound.is_err(), "{path} panics");
}

/// Sends `path` to `app` under a timeout that cuts it short.
fn request_cut_short(runtime: &tokio::runtime::Runtime, app: &axum::Router, path: &str) {
    let cut = runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(1), request(app.clone(), path)).await });
    assert!(cut.is_err(), "{path} was cut short");
}

/// The default layer in an axum app: a leak, a panic and a timeout are each caught per
/// request, and the next requests are served (the leaked ledger is broken, naming the
/// request; the panicking request's token is reclaimed; the cut-short one's comes back).
#[test]
fn in_axum_the_default_layer_catches_each_request_and_keeps_serving() {
    let ledger = Arc::new(ownsync::Mutex::new(0));
    let app: axum::Router = misbehaving_routes(&ledger).layer(CapacityLimitLayer::new(1)).with_state(());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();

    assert_eq!(runtime.block_on(request(app.clone(), "/leak")).1, "leaked");
    let broken = match ledger.try_lock() {
        Err(ownsync::TryLockError::Broken(broken)) => broken,
        other => panic!("the leaked ledger must be broken, got {other:?}"),
    };
    assert!(broken.owner().is_task(), "named by the request's own scope");
    assert_eq!(broken.reason(), AbandonReason::Exited);

    for _ in 0..2 {
        request_that_panics(&runtime, &app, "/panic");
        request_cut_short(&runtime, &app, "/slow");
    }
    // Every route, the misbehaving ones again included, still has its one token.
    assert_eq!(runtime.block_on(request(app.clone(), "/")), (StatusCode::OK, "hello".to_owned()));
    request_cut_short(&runtime, &app, "/slow");
    request_that_panics(&runtime, &app, "/panic");
}

/// The breaking layer in an axum app, with `unavailable` as the error handler: the
/// panicking request breaks its route's limiter, and the next requests to it get 503 with
/// the error's text naming the request; a timeout breaks nothing; the limiter, reached
/// through the layer, is repaired and serves again.
#[test]
fn in_axum_the_breaking_layer_answers_503_after_a_panic_until_repaired() {
    let ledger = Arc::new(ownsync::Mutex::new(0));
    let layer = CapacityLimitLayer::new(1).break_on_abandon();
    let app = misbehaving_routes(&ledger).layer(
        ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(ownsync::tower::unavailable))
            .layer(layer.clone()),
    );
    // Made into routes once (as `axum::serve` does), not per request: one limiter per route.
    let app: axum::Router = app.with_state(());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();

    request_cut_short(&runtime, &app, "/slow");
    assert!(layer.limiters().iter().all(|limiter| !limiter.is_broken()), "a timeout breaks nothing");
    assert_eq!(runtime.block_on(request(app.clone(), "/leak")).1, "leaked", "a leaked guard of the app's");

    request_that_panics(&runtime, &app, "/panic");
    for _ in 0..2 {
        let (status, text) = runtime.block_on(request(app.clone(), "/panic"));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("broken") && text.contains("panicked"), "the error's text: {text}");
    }
    assert_eq!(
        runtime.block_on(request(app.clone(), "/")),
        (StatusCode::OK, "hello".to_owned()),
        "other routes serve"
    );

    let broken: Vec<_> = layer.limiters().into_iter().filter(CapacityLimiter::is_broken).collect();
    assert_eq!(broken.len(), 1, "the /panic route's limiter");
    assert_eq!(broken[0].try_repair(), Ok(1));
    request_that_panics(&runtime, &app, "/panic"); // admitted again, and it breaks it again
    assert!(broken[0].is_broken());
}
/// The reported reproduction, with tower's own mock services: `new(1)` limits each
/// service separately (the second is ready too), as `ConcurrencyLimitLayer::new(1)`.
#[test]
fn tower_mock_services_each_get_their_own_limit() {
    use tower::Layer;
    use tower_test::mock;
    let layer = CapacityLimitLayer::new(1);
    let (a, mut handle_a) = mock::pair::<u32, u32>();
    let (b, _handle_b) = mock::pair::<u32, u32>();
    let mut a = mock::Spawn::new(layer.layer(a));
    let mut b = mock::Spawn::new(layer.layer(b));
    assert!(a.poll_ready().is_ready());
    assert!(b.poll_ready().is_ready(), "tower's layer: Ready");
    let response = a.call(7);
    let (request, reply) = block_on(handle_a.next_request()).expect("the request reached the service");
    assert_eq!(request, 7);
    reply.send_response(8);
    assert_eq!(block_on(response).unwrap(), 8);
    // A second request on `a` waits for nothing: its token came back with the response.
    assert!(a.poll_ready().is_ready());

    let global = GlobalCapacityLimitLayer::new(1);
    let (c, _handle_c) = mock::pair::<u32, u32>();
    let (d, _handle_d) = mock::pair::<u32, u32>();
    let (mut c, mut d) = (mock::Spawn::new(global.layer(c)), mock::Spawn::new(global.layer(d)));
    assert!(c.poll_ready().is_ready());
    assert!(d.poll_ready().is_pending(), "one limit shared by both");
}

/// A request's token is nobody's: reserved by `poll_ready` inside a tracked task (a
/// connection task, say), it moves into the response future, which outlives that task
/// here; the task's exit neither breaks the limiter nor takes the token, and the
/// response's drop gives it back. (Borrowed with `acquire()`, the token would be the
/// task's: listed under its id, and counted as an orphan once the task exits.)
#[test]
#[expect(
    clippy::async_yields_async,
    reason = "the task hands its response future out, unawaited, on purpose"
)]
fn a_requests_token_is_nobodys_and_outlives_the_task_that_reserved_it() {
    let limiter = CapacityLimiter::new(1);
    let service = CapacityLimit::new(echo(), limiter.clone());
    let response = block_on(tracked(async move {
        let mut service = service;
        service.ready().await.unwrap();
        service.call(7) // the task ends here, its response still in flight
    }));
    assert!(!limiter.is_broken(), "the task's exit abandoned nothing");
    assert_eq!(limiter.borrowed_tokens(), 1, "the response still holds the token");
    let stats = limiter.statistics();
    assert!(stats.borrowers().is_empty(), "nobody's, and not named");
    assert_eq!(stats.orphaned(), 0, "nobody acquired it, so nobody left it behind");
    assert_eq!(block_on(response).unwrap(), 7);
    assert_eq!(limiter.available_tokens(), 1);
}
