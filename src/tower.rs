//! A concurrency limit for tower services on a [`CapacityLimiter`] (feature `tower`).
//!
//! A drop-in for `tower::limit::ConcurrencyLimitLayer`: each request borrows one token
//! from `poll_ready` until its response future finishes or is dropped, and requests
//! beyond the limit wait in FIFO order. The difference is what happens when the limiter
//! breaks (a borrower elsewhere abandoned its token with the `Break` policy): every
//! waiting and later `poll_ready` fails at once with [`AcquireError::Broken`], which
//! names who abandoned it and why, instead of the service quietly losing capacity until
//! it hangs. `CapacityLimitLayer::new(n)` gives each service its own limiter, as tower's
//! layer does; `GlobalCapacityLimitLayer` shares one (tower's `GlobalConcurrencyLimitLayer`),
//! possibly with the rest of the program (`from_limiter`). One difference from tower: the
//! error type is always [`BoxError`] (the limiter's error or the service's), where
//! tower's layer keeps `S::Error`.
//!
//! Each request borrows anonymously, for nobody (several requests of one connection task
//! may be in flight at once), so the token is returned when the response future is
//! dropped, as with tower's layer; it is not tied to a task's exit. Such a borrow costs
//! what a semaphore permit does: it gets an id only if something asks for one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tower_layer::Layer;
use tower_service::Service;

use crate::error::AcquireError;
use crate::limiter::{CapacityLimiter, CapacityToken};

/// The error type of a limited service: the inner service's error, or an
/// [`AcquireError`] from the limiter (boxed, as tower's own layers do).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Limits each wrapped service to `max` requests in flight, with a limiter of its own
/// per service, as tower's `ConcurrencyLimitLayer` does. For one limit shared by every
/// service the layer wraps, use [`GlobalCapacityLimitLayer`].
///
/// ```
/// use ownsync::tower::CapacityLimitLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ownsync::tower::BoxError> {
/// let service = ServiceBuilder::new()
///     .layer(CapacityLimitLayer::new(8))
///     .service(service_fn(|name: String| async move { Ok::<_, std::convert::Infallible>(name.len()) }));
/// assert_eq!(service.oneshot("ownsync".to_owned()).await?, 7);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CapacityLimitLayer {
    max: usize,
}

impl CapacityLimitLayer {
    /// A layer that gives each service it wraps its own limiter of `max` tokens (as
    /// `ConcurrencyLimitLayer::new`).
    ///
    /// # Panics
    /// When it wraps a service, if `max` exceeds `Semaphore::MAX_PERMITS`.
    ///
    /// ```
    /// let layer = ownsync::tower::CapacityLimitLayer::new(16);
    /// assert_eq!(layer.max(), 16);
    /// ```
    pub fn new(max: usize) -> Self {
        CapacityLimitLayer { max }
    }

    /// How many requests each wrapped service admits at once.
    ///
    /// ```
    /// assert_eq!(ownsync::tower::CapacityLimitLayer::new(3).max(), 3);
    /// ```
    pub fn max(&self) -> usize {
        self.max
    }
}

impl<S> Layer<S> for CapacityLimitLayer {
    type Service = CapacityLimit<S>;

    fn layer(&self, inner: S) -> CapacityLimit<S> {
        CapacityLimit::new(inner, CapacityLimiter::new(self.max))
    }
}

/// Limits all the services it wraps *together* to one limiter's tokens, as tower's
/// `GlobalConcurrencyLimitLayer` does. Share the limiter with the rest of the program
/// ([`from_limiter`](Self::from_limiter)) to read its statistics or to limit other work
/// against the same tokens.
///
/// ```
/// use ownsync::tower::GlobalCapacityLimitLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ownsync::tower::BoxError> {
/// let limiter = ownsync::CapacityLimiter::new(8);
/// let service = ServiceBuilder::new()
///     .layer(GlobalCapacityLimitLayer::from_limiter(limiter.clone()))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) }));
/// assert_eq!(service.oneshot(7).await?, 7);
/// assert_eq!(limiter.available_tokens(), 8);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GlobalCapacityLimitLayer {
    limiter: CapacityLimiter,
}

impl GlobalCapacityLimitLayer {
    /// A layer whose services share one new limiter of `max` tokens.
    ///
    /// # Panics
    /// If `max` exceeds `Semaphore::MAX_PERMITS`.
    ///
    /// ```
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::new(16);
    /// assert_eq!(layer.limiter().total_tokens(), 16);
    /// ```
    #[track_caller]
    pub fn new(max: usize) -> Self {
        Self::from_limiter(CapacityLimiter::new(max))
    }

    /// A layer on a limiter shared with the rest of the program.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::with_name_and_policy(4, "handlers", ownsync::AbandonPolicy::Break);
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::from_limiter(limiter.clone());
    /// assert_eq!(layer.limiter().name(), Some("handlers"));
    /// ```
    pub fn from_limiter(limiter: CapacityLimiter) -> Self {
        GlobalCapacityLimitLayer { limiter }
    }

    /// The limiter the services share.
    ///
    /// ```
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::new(2);
    /// assert_eq!(layer.limiter().borrowed_tokens(), 0);
    /// ```
    pub fn limiter(&self) -> &CapacityLimiter {
        &self.limiter
    }
}

impl<S> Layer<S> for GlobalCapacityLimitLayer {
    type Service = CapacityLimit<S>;

    fn layer(&self, inner: S) -> CapacityLimit<S> {
        CapacityLimit::new(inner, self.limiter.clone())
    }
}

/// `Sync` as well as `Send`, so that a `CapacityLimit` is `Sync` when its service is
/// (axum's `Router::layer` requires it).
type Acquiring = Pin<Box<dyn Future<Output = Result<CapacityToken<'static>, AcquireError>> + Send + Sync>>;

enum Admission {
    Idle,
    Acquiring(Acquiring),
    Admitted(CapacityToken<'static>),
}

/// A service limited by a [`CapacityLimiter`]; see [`CapacityLimitLayer`] and
/// [`GlobalCapacityLimitLayer`].
///
/// ```
/// use ownsync::tower::CapacityLimit;
/// use tower::{ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let echo = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
/// let limited = CapacityLimit::new(echo, ownsync::CapacityLimiter::new(1));
/// assert_eq!(limited.oneshot(3).await.unwrap(), 3);
/// # }
/// ```
pub struct CapacityLimit<S> {
    inner: S,
    limiter: CapacityLimiter,
    admission: Admission,
}

impl<S> CapacityLimit<S> {
    /// Wraps `inner` so that at most the limiter's tokens of requests are in flight.
    ///
    /// ```
    /// let service = ownsync::tower::CapacityLimit::new((), ownsync::CapacityLimiter::new(1));
    /// assert_eq!(service.limiter().total_tokens(), 1);
    /// ```
    pub fn new(inner: S, limiter: CapacityLimiter) -> Self {
        CapacityLimit { inner, limiter, admission: Admission::Idle }
    }

    /// The limiter.
    ///
    /// ```
    /// let service = ownsync::tower::CapacityLimit::new((), ownsync::CapacityLimiter::new(1));
    /// assert!(!service.limiter().is_broken());
    /// ```
    pub fn limiter(&self) -> &CapacityLimiter {
        &self.limiter
    }

    /// The wrapped service.
    ///
    /// ```
    /// let service = ownsync::tower::CapacityLimit::new(7, ownsync::CapacityLimiter::new(1));
    /// assert_eq!(*service.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    ///
    /// ```
    /// let mut service = ownsync::tower::CapacityLimit::new(7, ownsync::CapacityLimiter::new(1));
    /// *service.get_mut() += 1;
    /// assert_eq!(service.into_inner(), 8);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped (a token reserved by `poll_ready` is returned).
    ///
    /// ```
    /// let service = ownsync::tower::CapacityLimit::new("inner", ownsync::CapacityLimiter::new(1));
    /// assert_eq!(service.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// A clone has its own admission: a token reserved by the original stays with it.
impl<S: Clone> Clone for CapacityLimit<S> {
    fn clone(&self) -> Self {
        CapacityLimit::new(self.inner.clone(), self.limiter.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for CapacityLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("admitted", &matches!(self.admission, Admission::Admitted(_)))
            .finish()
    }
}

impl<S, Request> Service<Request> for CapacityLimit<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            match &mut self.admission {
                Admission::Idle => {
                    let (limiter, site) = (self.limiter.clone(), crate::owner::caller_site());
                    // For nobody: the token moves into the response future, which any
                    // task may drive, so no owner answers for it (and none is named).
                    self.admission = Admission::Acquiring(Box::pin(async move {
                        limiter
                            .acquire_unnamed(crate::owner::Caller::Async, site)
                            .await
                            .map(CapacityToken::into_owned)
                    }));
                }
                Admission::Acquiring(acquiring) => {
                    let result = ready!(acquiring.as_mut().poll(cx));
                    match result {
                        Ok(token) => self.admission = Admission::Admitted(token),
                        Err(err) => {
                            self.admission = Admission::Idle;
                            return Poll::Ready(Err(err.into()));
                        }
                    }
                }
                Admission::Admitted(_) => return self.inner.poll_ready(cx).map_err(Into::into),
            }
        }
    }

    /// # Panics
    /// If `poll_ready` did not return `Ready(Ok(()))` first (tower's contract).
    fn call(&mut self, request: Request) -> Self::Future {
        let Admission::Admitted(token) = std::mem::replace(&mut self.admission, Admission::Idle) else {
            panic!("CapacityLimit::call without a successful poll_ready first");
        };
        ResponseFuture { inner: self.inner.call(request), token: Some(token) }
    }
}

pin_project_lite::pin_project! {
    /// The response of a [`CapacityLimit`] service: holds the request's token until it
    /// finishes or is dropped.
    ///
    /// ```
    /// use tower::{Service, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let echo = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    /// let mut service = ownsync::tower::CapacityLimit::new(echo, limiter.clone());
    /// let response = service.ready().await.unwrap().call(1);
    /// assert_eq!(limiter.available_tokens(), 0); // held by the response future
    /// assert_eq!(response.await.unwrap(), 1);
    /// assert_eq!(limiter.available_tokens(), 1);
    /// # }
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        token: Option<CapacityToken<'static>>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        // Done: the token goes back now, not when the caller gets round to dropping us.
        this.token.take();
        Poll::Ready(output.map_err(Into::into))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("token", &self.token).finish()
    }
}
