//! A capacity-limited HTTP server whose handlers misbehave, and the proof that nothing is
//! silently lost.
//!
//! - `GET /work?ms=N`: borrows a token of the `CapacityLimiter` (4 tokens) for N ms of
//!   work. The server cancels work that takes over 100 ms (504); a client may disconnect.
//! - `GET /leak`: borrows a token and "forgets" to return it (a bug). The limiter's
//!   `Reclaim` policy takes it back when the request's task ends, and counts it.
//! - `GET /panic`: borrows a token, then panics (500).
//! - `GET /ledger?panic=1`: updates a ledger under a `Mutex`; a panic mid-update breaks it
//!   (the data may be half-written), and every later ledger request fails fast with 503
//!   and a message naming the request that broke it.
//! - `GET /stats`: the limiter's statistics.
//! - `GET /limited/ownsync?ms=N` and `GET /limited/tower?ms=N`: N ms of work (default 0)
//!   behind `ownsync::tower::CapacityLimitLayer::new(16)` or tower's
//!   `ConcurrencyLimitLayer::new(16)`, the same handler: `benches/wrk-layers.sh` compares
//!   their throughput.
//! - `GET /debug/locks`: who holds and who waits, with acquire sites. With the
//!   `diagnostics` feature, the process-wide snapshot (every primitive, and wait-for
//!   cycles); without it, the limiter's and the ledger's own statistics.
//!
//! Each handler runs inside `ownsync::tracked`, so the request is the owner of what it
//! takes. Run `cargo run -p ownsync-benches --example server` to serve on 127.0.0.1:3000 (`-- --listen ADDR`
//! elsewhere; `benches/wrk.sh` drives it with `wrk`), or
//! `cargo run -p ownsync-benches --example server -- --load-test 400` to serve on a free port, drive it with
//! 400 requests (every kind, 32 at a time, with client disconnects), and check that no
//! request hung and the limiter is back to full capacity.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use futures::FutureExt;
use ownsync::{AbandonPolicy, AcquireError, CapacityLimiter, Mutex, tracked};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKENS: usize = 4;
const WORK_DEADLINE: Duration = Duration::from_millis(100);

struct App {
    limiter: CapacityLimiter,
    ledger: Mutex<u64>,
}

type Reply = (StatusCode, String);

/// Runs a handler body as its own tracked owner; a panic becomes a 500.
async fn as_request<F: Future<Output = Reply>>(body: F) -> Reply {
    match AssertUnwindSafe(tracked(body)).catch_unwind().await {
        Ok(reply) => reply,
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the handler panicked\n".into()),
    }
}

fn unavailable(err: AcquireError) -> Reply {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"))
}

async fn work(State(app): State<Arc<App>>, Query(query): Query<HashMap<String, String>>) -> Reply {
    let ms = query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(10);
    let request = as_request(async {
        let _token = match app.limiter.acquire().await {
            Ok(token) => token,
            Err(err) => return unavailable(err),
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        (StatusCode::OK, format!("worked {ms} ms\n"))
    });
    // Dropping the tracked request cancels it: its token goes back as the future drops.
    tokio::time::timeout(WORK_DEADLINE, request)
        .await
        .unwrap_or_else(|_| (StatusCode::GATEWAY_TIMEOUT, "cancelled at the deadline\n".into()))
}

async fn leak(State(app): State<Arc<App>>) -> Reply {
    as_request(async {
        match app.limiter.acquire().await {
            Ok(token) => token.detach(), // the bug: never released
            Err(err) => return unavailable(err),
        }
        (StatusCode::OK, "leaked a token\n".into())
    })
    .await
}

async fn panic(State(app): State<Arc<App>>) -> Reply {
    as_request(async {
        let _token = app.limiter.acquire().await;
        panic!("a bug in the handler");
    })
    .await
}

async fn ledger(State(app): State<Arc<App>>, Query(query): Query<HashMap<String, String>>) -> Reply {
    as_request(async {
        let mut ledger = match app.ledger.lock().await {
            Ok(ledger) => ledger,
            Err(err) => return unavailable(err),
        };
        *ledger += 1;
        if query.contains_key("panic") {
            panic!("half-way through an update");
        }
        (StatusCode::OK, format!("ledger at {}\n", *ledger))
    })
    .await
}

async fn stats(State(app): State<Arc<App>>) -> Reply {
    let stats = app.limiter.statistics();
    let body = format!(
        "total={} borrowed={} waiting={} reclaimed={} ledger_broken={}\n",
        stats.total_tokens(),
        stats.borrowed_tokens(),
        stats.waiters(),
        stats.abandoned().count(),
        app.ledger.is_broken(),
    );
    (StatusCode::OK, body)
}

/// Who holds and who waits: see the module docs.
async fn debug_locks(State(app): State<Arc<App>>) -> Reply {
    #[cfg(feature = "diagnostics")]
    let body = {
        let _ = &app;
        ownsync::diagnostics::snapshot().to_string()
    };
    #[cfg(not(feature = "diagnostics"))]
    let body = format!("{:?}\n{:?}\n", app.limiter, app.ledger);
    (StatusCode::OK, body)
}

/// The handler behind both concurrency-limit layers: `ms` of work, then a short answer.
async fn limited(Query(query): Query<HashMap<String, String>>) -> &'static str {
    let ms = query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    "done\n"
}

/// How many requests each of the two layers lets in at once.
const LAYER_LIMIT: usize = 16;

fn router() -> Router {
    let app = Arc::new(App {
        limiter: CapacityLimiter::with_name_and_policy(TOKENS, "handlers", AbandonPolicy::Reclaim),
        ledger: Mutex::with_name(0, "ledger"),
    });
    Router::new()
        .route("/work", get(work))
        .route("/leak", get(leak))
        .route("/panic", get(panic))
        .route("/ledger", get(ledger))
        .route("/stats", get(stats))
        .route("/debug/locks", get(debug_locks))
        .merge(
            Router::new()
                .route("/limited/ownsync", get(limited))
                .layer(ownsync::tower::CapacityLimitLayer::new(LAYER_LIMIT)),
        )
        .merge(
            Router::new()
                .route("/limited/tower", get(limited))
                .layer(tower::limit::ConcurrencyLimitLayer::new(LAYER_LIMIT)),
        )
        .with_state(app)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (load_test, listen) = match args.as_slice() {
        [] => (None, "127.0.0.1:3000".to_owned()),
        [flag, n] if flag == "--load-test" => (Some(n.parse::<usize>()?), "127.0.0.1:0".to_owned()),
        [flag, addr] if flag == "--listen" => (None, addr.clone()),
        _ => return Err("usage: server [--load-test REQUESTS | --listen ADDR]".into()),
    };
    // The handlers' panics are part of the demo: one line each, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("handler panic (expected): {}", info.payload_as_str().unwrap_or("?"))
    }));
    let listener = TcpListener::bind(listen.as_str()).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router()).await });
    match load_test {
        None => {
            println!("serving on http://{addr} (try /work?ms=50, /leak, /panic, /ledger?panic=1, /stats)");
            server.await??;
        }
        Some(requests) => {
            drive(addr, requests).await?;
            server.abort();
        }
    }
    Ok(())
}

/// One HTTP/1.1 GET on its own connection: the status and the body.
async fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// A client that sends a request and hangs up without reading the answer.
async fn disconnect(addr: SocketAddr, path: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await
}

/// The load test: every kind of request, 32 at a time; then the checks.
async fn drive(addr: SocketAddr, requests: usize) -> Result<(), Box<dyn std::error::Error>> {
    const HANG: Duration = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let ledger_panic = requests / 40 * 20 + 4; // one ledger update panics, half-way through
    let paths: Vec<String> = (0..requests)
        .map(|i| match i % 20 {
            0 => "/leak".to_owned(),
            1 => "/panic".to_owned(),
            2 => "/work?ms=1000".to_owned(), // over the deadline: cancelled by the server
            3 => "disconnect /work?ms=30".to_owned(),
            4 if i == ledger_panic => "/ledger?panic=1".to_owned(),
            4 | 5 => "/ledger".to_owned(),
            n => format!("/work?ms={}", n % 7),
        })
        .collect();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(32));
    let mut clients = tokio::task::JoinSet::new();
    for path in paths.iter().cloned() {
        let permit = semaphore.clone().acquire_owned().await?;
        clients.spawn(async move {
            let _permit = permit;
            let outcome = match path.strip_prefix("disconnect ") {
                Some(path) => tokio::time::timeout(HANG, disconnect(addr, path))
                    .await
                    .map(|r| r.map(|()| (0, String::new()))),
                None => tokio::time::timeout(HANG, fetch(addr, &path)).await,
            };
            (path, outcome)
        });
    }
    let mut by_status: HashMap<(String, u16), usize> = HashMap::new();
    let (mut hung, mut failed) = (0, 0);
    while let Some(joined) = clients.join_next().await {
        let (path, outcome) = joined?;
        let route = path.split('?').next().unwrap_or_default().to_owned();
        match outcome {
            Err(_) => hung += 1,
            Ok(Err(err)) => {
                eprintln!("{path}: {err}");
                failed += 1;
            }
            Ok(Ok((status, _))) => *by_status.entry((route, status)).or_default() += 1,
        }
    }
    // Handlers of disconnected clients may still be finishing: wait for the limiter to
    // settle (bounded), then check it is whole.
    let mut stats = String::new();
    for _ in 0..100 {
        stats = fetch(addr, "/stats").await?.1;
        if stats.contains("borrowed=0 waiting=0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut summary: Vec<_> = by_status.into_iter().collect();
    summary.sort();
    println!("{requests} requests in {:?}; by route and status:", started.elapsed());
    for ((route, status), count) in &summary {
        println!("  {route:<12} {status}  x{count}");
    }
    println!("stats: {}", stats.trim());
    let locks = fetch(addr, "/debug/locks").await?.1;
    println!("/debug/locks:\n{}", locks.trim_end());
    let leaks = paths.iter().filter(|p| *p == "/leak").count();
    let count = |route: &str, status: u16| {
        summary.iter().find(|((r, s), _)| r == route && *s == status).map_or(0, |(_, n)| *n)
    };
    let mut problems = Vec::new();
    if hung > 0 {
        problems.push(format!("{hung} request(s) hung"));
    }
    if failed > 0 {
        problems.push(format!("{failed} request(s) failed to connect"));
    }
    if !stats.contains(&format!("total={TOKENS} borrowed=0 waiting=0 reclaimed={leaks} ")) {
        problems.push(format!("the limiter is not back to full with {leaks} reclaimed: {stats}"));
    }
    if count("/leak", 200) != leaks || count("/work", 504) == 0 || count("/panic", 500) == 0 {
        problems.push("a leak, a cancelled request or a panic did not get its answer".to_owned());
    }
    if count("/ledger", 503) == 0 || !stats.contains("ledger_broken=true") {
        problems.push("requests after the ledger broke did not fail fast with 503".to_owned());
    }
    if !locks.contains("ledger") || !locks.contains("broken") {
        problems.push(format!("/debug/locks does not show the broken ledger: {locks}"));
    }
    if problems.is_empty() {
        println!("load test passed: no request hung, capacity is whole");
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}
