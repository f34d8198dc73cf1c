//! The uncontended lock + unlock loop alone, for callgrind's instruction counts:
//! `sections MODE N` runs N lock + unlock pairs of one mutex in one future polled
//! once, MODE one of `anonymous`, `tracked` (in a tracked task), `with_lock` and
//! `lock_then_closure` (both tracked), `with_write` and `write_then_closure` (an RwLock's
//! writer, tracked). The count per lock is (instructions at 2N - at N)
//! / N, so start-up and shutdown cancel out:
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/sections tracked 100000`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

fn run_ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("sections: never waits"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().expect("MODE");
    let n: u64 = args.next().expect("N").parse().expect("a number");
    let mutex = &ownsync::Mutex::new(0u64);
    let rwlock = &ownsync::RwLock::new(0u64);
    let section = async |n: &mut u64| *n += 1;
    match mode.as_str() {
        "anonymous" => run_ready(async {
            for _ in 0..n {
                *black_box(mutex).lock().await.unwrap() += 1;
            }
        }),
        "tracked" => run_ready(ownsync::tracked(async {
            for _ in 0..n {
                *black_box(mutex).lock().await.unwrap() += 1;
            }
        })),
        "with_lock" => run_ready(ownsync::tracked(async {
            for _ in 0..n {
                black_box(mutex).with_lock(section).await.unwrap();
            }
        })),
        "lock_then_closure" => run_ready(ownsync::tracked(async {
            for _ in 0..n {
                section(&mut *black_box(mutex).lock().await.unwrap()).await;
            }
        })),
        "with_write" => run_ready(ownsync::tracked(async {
            for _ in 0..n {
                black_box(rwlock).with_write(section).await.unwrap();
            }
        })),
        "write_then_closure" => run_ready(ownsync::tracked(async {
            for _ in 0..n {
                section(&mut *black_box(rwlock).write().await.unwrap()).await;
            }
        })),
        other => panic!("unknown mode {other}"),
    }
    assert_eq!(*mutex.try_lock().unwrap() + *rwlock.try_read().unwrap(), n);
}
