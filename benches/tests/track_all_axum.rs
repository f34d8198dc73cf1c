//! An axum server on a `track_all` runtime: a handler that leaks a pool permit is caught
//! with no change to the handler or the server. Needs `--cfg tokio_unstable`:
//! `RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/tokio-unstable cargo test -p ownsync-benches --features tokio --test track_all_axum`
#![cfg(all(feature = "tokio", tokio_unstable))]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use ownsync::{AbandonReason, AcquireError, Semaphore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A handler with a bug: it takes a pool permit and forgets it. It answers with its
/// owner, so the test can check whom the error names.
async fn leaky(State(pool): State<Arc<Semaphore>>) -> String {
    std::mem::forget(pool.acquire().await.unwrap());
    ownsync::current_owner().to_string()
}

/// One request on its own connection (`Connection: close`), read to the end: the body.
async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap().to_string()
}

#[test]
fn an_axum_handler_that_leaks_a_pool_permit_breaks_the_pool_naming_its_task() {
    let runtime = ownsync::tokio::track_all(&mut tokio::runtime::Builder::new_multi_thread())
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = Arc::new(Semaphore::new(2));
        let app = axum::Router::new().route("/leak", axum::routing::get(leaky)).with_state(pool.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let handler_owner = get(address, "/leak").await;
        assert!(
            handler_owner.starts_with("task#"),
            "the handler runs in a task that is an owner: {handler_owner}"
        );
        // The connection's task ends once the response is written and the connection
        // closed: what it leaked breaks the pool, and the drain fails instead of hanging
        // (the timeout only turns a hang into a failure).
        let drained = tokio::time::timeout(Duration::from_secs(60), pool.acquire_many(2)).await;
        let Ok(Err(AcquireError::Broken(err))) = drained else { panic!("expected Broken, got {drained:?}") };
        assert_eq!(err.owner().to_string(), handler_owner);
        assert_eq!(err.reason(), AbandonReason::Exited);
        assert!(err.to_string().contains(&handler_owner), "{err}");
        server.abort();
    });
}
