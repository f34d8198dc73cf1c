//! Three processes share a limit of two calls in flight to a slow downstream service.
//! One of them is killed (`kill -9`) while it holds a token: what do the others see?
//!
//! With a lease-based lock that reclaims (etcd's own mutex, Redlock, ...) they would
//! simply go on, the dead process's half-finished call forgotten. Here the limiter
//! breaks about one lease time to live later, and every waiter is told which process
//! (and which acquire) died holding it; after a look at the downstream, the operator
//! repairs it.
//!
//! Run it against an etcd (`OWNSYNC_ETCD`, default `http://127.0.0.1:2379`):
//!
//! ```text
//! cargo run -p ownsync-etcd --example fleet_limiter
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ownsync::AbandonPolicy;
use ownsync_etcd::{FleetError, Session};

const TTL: Duration = Duration::from_secs(2);

fn endpoint() -> String {
    std::env::var("OWNSYNC_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), FleetError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2], &args[3]).await;
    }
    let limiter_name = format!("downstream-{}", std::process::id());
    // Three worker processes: this program again.
    let mut workers: Vec<_> = (0..3)
        .map(|index| {
            Command::new(std::env::current_exe().unwrap())
                .args(["worker", &index.to_string(), &limiter_name])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    let outputs: Vec<_> =
        workers.iter_mut().map(|worker| BufReader::new(worker.stdout.take().unwrap())).collect();
    let (lines, seen) = std::sync::mpsc::channel();
    for output in outputs {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in output.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    drop(lines);
    // Kill worker 0 the first time it holds a token.
    for line in seen.iter() {
        println!("{line}");
        if line.starts_with("worker 0: holding") {
            workers[0].kill().expect("kill worker 0");
            println!("-- worker 0 killed (kill -9) while holding a token --");
            break;
        }
    }
    for line in seen.iter() {
        println!("{line}");
    }
    for worker in &mut workers {
        let _ = worker.wait();
    }
    // The operator checked the downstream: repair.
    let session = Session::connect(&[endpoint().as_str()], TTL).await?;
    let limiter = session.limiter(&limiter_name, 2, AbandonPolicy::Break);
    println!("repaired: {}", limiter.try_repair().await?);
    limiter.acquire().await?.release().await?;
    println!("the limiter grants again");
    Ok(())
}

/// One process: calls the slow downstream, two at a time fleet-wide, until the limiter
/// breaks.
async fn worker(index: &str, limiter_name: &str) -> Result<(), FleetError> {
    let session = Session::connect(&[endpoint().as_str()], TTL).await?;
    let limiter = session.limiter(limiter_name, 2, AbandonPolicy::Break);
    for call in 0.. {
        match limiter.acquire().await {
            Ok(token) => {
                println!("worker {index}: holding a token (fence {}), call {call}", token.fence());
                tokio::time::sleep(Duration::from_millis(300)).await; // the slow downstream
                token.release().await?;
            }
            Err(FleetError::Broken(err)) => {
                println!("worker {index}: {err}");
                return Ok(());
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}
