//! Test support shared by the integration tests: three executors behind one trait, and a
//! manual-poll harness whose wakers count their wakes (tests wait on events, not time).
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::FutureExt;
use futures::future::BoxFuture;

/// A spawned task: join it (`None` if it was aborted or panicked) or abort it.
pub struct Task<T> {
    join: BoxFuture<'static, Option<T>>,
    abort: Box<dyn FnOnce() + Send>,
}

impl<T> Task<T> {
    /// Waits until the task has finished and its future has been dropped.
    pub async fn join(self) -> Option<T> {
        self.join.await
    }
    /// Cancels the task; `join` then resolves once its future is dropped.
    pub fn abort(self) -> Self {
        let Task { join, abort } = self;
        abort();
        Task { join, abort: Box::new(|| {}) }
    }
}

/// An executor the scenarios run on.
pub trait Rt: Sync {
    fn block_on<F: Future>(&self, future: F) -> F::Output;
    fn spawn<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Task<T>;
}

/// tokio's multi-thread runtime, 2 workers.
pub struct Tokio(pub tokio::runtime::Runtime);

impl Tokio {
    pub fn new() -> Self {
        Tokio(tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap())
    }
}

impl Rt for Tokio {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    fn spawn<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        let handle = self.0.spawn(future);
        let abort = handle.abort_handle();
        Task { join: async move { handle.await.ok() }.boxed(), abort: Box::new(move || abort.abort()) }
    }
}

/// futures' thread pool (2 threads) with futures' `block_on`.
pub struct Pool(pub futures::executor::ThreadPool);

impl Pool {
    pub fn new() -> Self {
        Pool(futures::executor::ThreadPool::builder().pool_size(2).create().unwrap())
    }
}

impl Rt for Pool {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        futures::executor::block_on(future)
    }
    fn spawn<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        use futures::task::SpawnExt;
        task_on(|task| self.0.spawn(task).unwrap(), future)
    }
}

/// Spawns `future` with `spawn` (an executor without abort handles or panic reports of
/// its own) as a [`Task`]: aborted through `futures::future::abortable`, a panic caught.
fn task_on<T: Send + 'static>(
    spawn: impl FnOnce(BoxFuture<'static, ()>),
    future: impl Future<Output = T> + Send + 'static,
) -> Task<T> {
    let (future, abort) = futures::future::abortable(std::panic::AssertUnwindSafe(future).catch_unwind());
    let (done_tx, done_rx) = futures::channel::oneshot::channel();
    // Report only after the task's future (and everything it owned) has been dropped.
    spawn(
        async move {
            let result = future.await;
            let _ = done_tx.send(result.ok().and_then(Result::ok));
        }
        .boxed(),
    );
    Task { join: async move { done_rx.await.ok().flatten() }.boxed(), abort: Box::new(move || abort.abort()) }
}

/// smol's executor (async-executor, the crate smol re-exports it from, without the rest
/// of smol), run by 2 threads: the runtime-agnostic claim, on a third executor. Its
/// futures need no reactor, so any `block_on` drives them.
pub struct Smol(Arc<async_executor::Executor<'static>>);

impl Smol {
    pub fn new() -> Self {
        static EXECUTOR: std::sync::OnceLock<Arc<async_executor::Executor<'static>>> =
            std::sync::OnceLock::new();
        let executor = EXECUTOR.get_or_init(|| {
            let executor = Arc::new(async_executor::Executor::new());
            for _ in 0..2 {
                let executor = executor.clone();
                std::thread::spawn(move || {
                    futures::executor::block_on(executor.run(std::future::pending::<()>()))
                });
            }
            executor
        });
        Smol(executor.clone())
    }
}

impl Rt for Smol {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        futures::executor::block_on(future)
    }
    fn spawn<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        task_on(|task| self.0.spawn(task).detach(), future)
    }
}

/// Generates one `#[test]` per executor for a scenario `fn(&impl Rt)`.
#[macro_export]
macro_rules! on_runtimes {
    ($($scenario:ident),* $(,)?) => {
        mod on_tokio {
            $( #[test] fn $scenario() { super::$scenario(&$crate::common::Tokio::new()) } )*
        }
        mod on_futures_pool {
            $( #[test] fn $scenario() { super::$scenario(&$crate::common::Pool::new()) } )*
        }
        mod on_smol {
            $( #[test] fn $scenario() { super::$scenario(&$crate::common::Smol::new()) } )*
        }
    };
}

/// The error of an acquire that must have failed with `Broken`.
#[track_caller]
pub fn broken<T: std::fmt::Debug>(result: Result<T, ownsync::AcquireError>) -> ownsync::BrokenResourceError {
    match result {
        Err(ownsync::AcquireError::Broken(err)) => err,
        other => panic!("expected Broken, got {other:?}"),
    }
}

/// A waker that counts how often it was woken.
#[derive(Default)]
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future polled by hand, with its own counting waker.
pub struct Polled<F: Future> {
    future: Pin<Box<F>>,
    counter: Arc<CountingWaker>,
    waker: Waker,
}

impl<F: Future> Polled<F> {
    pub fn new(future: F) -> Self {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        Polled { future: Box::pin(future), counter, waker }
    }
    pub fn poll(&mut self) -> Poll<F::Output> {
        self.future.as_mut().poll(&mut Context::from_waker(&self.waker))
    }
    /// Polls with a different waker (the one returned), as a task that moved would.
    pub fn poll_with_new_waker(&mut self) -> (Poll<F::Output>, Arc<CountingWaker>) {
        let counter = Arc::new(CountingWaker::default());
        self.counter = counter.clone();
        self.waker = Waker::from(counter.clone());
        (self.poll(), counter)
    }
    pub fn wakes(&self) -> usize {
        self.counter.0.load(Ordering::SeqCst)
    }
    pub fn is_pending(&mut self) -> bool {
        self.poll().is_pending()
    }
    #[track_caller]
    pub fn ready(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }
}

impl CountingWaker {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `future` once more after each `Pending` until it is done: a yield stands in for
/// a sleep (tests wait on events, never on time).
pub async fn yielding<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let poll = future.as_mut().poll(cx);
        if poll.is_pending() {
            cx.waker().wake_by_ref();
        }
        poll
    })
    .await
}
