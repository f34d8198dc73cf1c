//! The fleet limiter against etcd's own lock API (the server-side mutex of the v3lock
//! service, through the etcd-client crate), side by side in one run on one etcd:
//!
//! - uncontended: one task, acquire + release, p50 and p99;
//! - contended: 4 and 16 tasks on 4 tokens for a few seconds each, grants per second,
//!   and wake-ups that left a waiter no nearer the front, per grant (a herd shows here). etcd's lock is a
//!   mutex, so its "4 tokens" are 4 locks, waiter `i` on lock `i % 4`.
//!
//! ```text
//! OWNSYNC_ETCD=http://127.0.0.1:2379 cargo run --release -p ownsync-etcd --example bench [seconds]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, LockOptions};
use ownsync::AbandonPolicy;
use ownsync_etcd::Session;

const ROUNDS: usize = 500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let endpoint = std::env::var("OWNSYNC_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".to_owned());
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let run = std::process::id();
    let session = Session::connect(&[endpoint.as_str()], Duration::from_secs(10)).await.unwrap();
    let mut client = Client::connect([endpoint.as_str()], None).await.unwrap();
    let lease = client.lease_grant(10, None).await.unwrap().id();
    let (keeper_client, keeper_stop) = (client.clone(), Arc::new(AtomicBool::new(false)));
    let keeper = tokio::spawn(keep_alive(keeper_client, lease, keeper_stop.clone()));

    println!("| measure | ownsync-etcd | etcd lock API |");
    println!("|---|---|---|");
    // Uncontended.
    let mutex = session.mutex(&format!("bench-{run}-uncontended"));
    let mut ours = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        mutex.acquire().await.unwrap().release().await.unwrap();
        ours.push(start.elapsed());
    }
    let mut theirs = Vec::with_capacity(ROUNDS);
    let name = format!("bench-{run}-etcd-uncontended");
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let held = client.lock(name.as_str(), Some(LockOptions::new().with_lease(lease))).await.unwrap();
        client.unlock(held.key()).await.unwrap();
        theirs.push(start.elapsed());
    }
    ours.sort();
    theirs.sort();
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "| uncontended acquire+release {label} | {:.2} ms | {:.2} ms |",
            percentile(&ours, p).as_secs_f64() * 1e3,
            percentile(&theirs, p).as_secs_f64() * 1e3
        );
    }
    // Contended.
    for waiters in [4, 16] {
        let (ours, wakeups) =
            contended_ours(&session, &format!("bench-{run}-{waiters}"), waiters, seconds).await;
        let theirs =
            contended_etcd(&client, lease, &format!("bench-{run}-etcd-{waiters}"), waiters, seconds).await;
        println!(
            "| {waiters} tasks on 4 tokens, grants/s (needless wake-ups per grant) | {:.0} ({:.3}) | {:.0} (n/a: server-side) |",
            ours.0 as f64 / ours.1,
            wakeups as f64 / ours.0.max(1) as f64,
            theirs.0 as f64 / theirs.1
        );
    }
    keeper_stop.store(true, Ordering::Relaxed);
    let _ = keeper.await;
    let _ = client.lease_revoke(lease).await;
}

async fn contended_ours(session: &Session, name: &str, waiters: usize, seconds: u64) -> ((u64, f64), u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let grants = Arc::new(AtomicU64::new(0));
    let wakeups = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..waiters)
        .map(|_| {
            let (session, name, stop, grants, wakeups) =
                (session.clone(), name.to_owned(), stop.clone(), grants.clone(), wakeups.clone());
            tokio::spawn(async move {
                let limiter = session.limiter(&name, 4, AbandonPolicy::Break);
                while !stop.load(Ordering::Relaxed) {
                    limiter.acquire().await.unwrap().release().await.unwrap();
                    grants.fetch_add(1, Ordering::Relaxed);
                }
                let stats = limiter.statistics().await.unwrap();
                wakeups.fetch_add(stats.needless_wakeups(), Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let counted = grants.load(Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    ((counted, elapsed), wakeups.load(Ordering::Relaxed))
}

async fn contended_etcd(client: &Client, lease: i64, name: &str, waiters: usize, seconds: u64) -> (u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let grants = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..waiters)
        .map(|index| {
            let (mut client, name, stop, grants) =
                (client.clone(), format!("{name}-{}", index % 4), stop.clone(), grants.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let held =
                        client.lock(name.as_str(), Some(LockOptions::new().with_lease(lease))).await.unwrap();
                    client.unlock(held.key()).await.unwrap();
                    grants.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let counted = grants.load(Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    (counted, elapsed)
}

async fn keep_alive(mut client: Client, lease: i64, stop: Arc<AtomicBool>) {
    let Ok((mut keeper, mut responses)) = client.lease_keep_alive(lease).await else { return };
    while !stop.load(Ordering::Relaxed) {
        if keeper.keep_alive().await.is_err() || responses.message().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
