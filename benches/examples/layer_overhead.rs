//! What the tower layer adds to each request, without a network: `ROUNDS` rounds, each
//! driving `REQUESTS` requests through the same trivial service behind tower's
//! `ConcurrencyLimitLayer` and behind `ownsync::tower::CapacityLimitLayer` (which runs
//! each request as a tracked scope), alternately and in alternating order, on one
//! thread. Prints the nanoseconds per request of each round and the medians.
//!
//! `cargo run --release -p ownsync-benches --example layer_overhead -- [REQUESTS] [ROUNDS]`

use std::convert::Infallible;
use std::time::Instant;

use futures::executor::block_on;
use tower::{Layer, Service, ServiceExt, service_fn};

fn echo() -> impl Service<u64, Response = u64, Error = Infallible> + Clone {
    service_fn(|n: u64| async move { Ok::<_, Infallible>(n) })
}

/// Nanoseconds per request for `requests` requests through `service` (ready, call, await).
fn run<S: Service<u64, Response = u64>>(mut service: S, requests: u64) -> f64
where
    S::Error: std::fmt::Debug,
{
    let started = Instant::now();
    block_on(async {
        for n in 0..requests {
            let answer = service.ready().await.unwrap().call(n).await.unwrap();
            std::hint::black_box(answer);
        }
    });
    started.elapsed().as_nanos() as f64 / requests as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    let requests = args.first().copied().unwrap_or(1_000_000);
    let rounds = args.get(1).copied().unwrap_or(7);
    let (mut towers, mut ours) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let tower_layer = || tower::limit::ConcurrencyLimitLayer::new(16).layer(echo());
        let our_layer = || ownsync::tower::CapacityLimitLayer::new(16).layer(echo());
        if round % 2 == 0 {
            towers.push(run(tower_layer(), requests));
            ours.push(run(our_layer(), requests));
        } else {
            ours.push(run(our_layer(), requests));
            towers.push(run(tower_layer(), requests));
        }
        println!(
            "round {round}: tower {:.0} ns/request, ownsync {:.0} ns/request",
            towers[round as usize], ours[round as usize]
        );
    }
    let (tower_ns, our_ns) = (median(&mut towers), median(&mut ours));
    println!(
        "median of {rounds} rounds of {requests} requests: tower {tower_ns:.0} ns, ownsync {our_ns:.0} ns (+{:.0} ns per request)",
        our_ns - tower_ns
    );
}
