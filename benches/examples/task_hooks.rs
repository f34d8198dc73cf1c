//! What `ownsync::tokio::track_all`'s hooks cost a runtime: a spawn-heavy loop (tasks
//! that do nothing) and a poll-heavy loop (one task yielding: one poll per yield), on a
//! current-thread runtime, with the hooks or without. Prints the time per task or per
//! poll; `benches/task_hooks.sh` counts instructions with callgrind instead.
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/tokio-unstable \
//!     cargo run --release -p ownsync-benches --example task_hooks --features tokio -- spawn track_all 100000
//! ```
//!
//! Arguments: `spawn` or `poll`; `plain` or `track_all` (which needs `--cfg
//! tokio_unstable` and the `tokio` feature); the number of tasks or polls.

use std::time::Instant;

const USAGE: &str = "usage: task_hooks <spawn|poll> <plain|track_all> <count>";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn runtime(hooks: &str) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    match hooks {
        "plain" => {}
        #[cfg(all(feature = "tokio", tokio_unstable))]
        "track_all" => {
            ownsync::tokio::track_all(&mut builder);
        }
        #[cfg(not(all(feature = "tokio", tokio_unstable)))]
        "track_all" => {
            eprintln!("track_all needs RUSTFLAGS=\"--cfg tokio_unstable\" and --features tokio");
            std::process::exit(2)
        }
        _ => usage(),
    }
    builder.build().expect("a tokio runtime")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shape, hooks, count] = args.as_slice() else { usage() };
    let Ok(count) = count.parse::<u64>() else { usage() };
    let runtime = runtime(hooks);
    let start = Instant::now();
    match shape.as_str() {
        "spawn" => runtime.block_on(async {
            for _ in 0..count {
                tokio::spawn(async { std::hint::black_box(1) }).await.unwrap();
            }
        }),
        "poll" => runtime.block_on(async {
            tokio::spawn(async move {
                for _ in 0..count {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap()
        }),
        _ => usage(),
    }
    let elapsed = start.elapsed();
    println!(
        "{shape} {hooks}: {:.1} ns per {}",
        elapsed.as_nanos() as f64 / count as f64,
        if shape == "spawn" { "task" } else { "poll" }
    );
}
