//! A concurrency limit for tower services on a [`CapacityLimiter`] (feature `tower`).
//!
//! A drop-in for `tower::limit::ConcurrencyLimitLayer`: each request takes one token in
//! `poll_ready` and gives it back when its response future finishes or is dropped;
//! requests beyond the limit wait in FIFO order; `Router::layer(CapacityLimitLayer::new(n))`
//! takes it as it takes tower's layer, since the error type is the inner service's.
//!
//! What it adds: **each request runs as a tracked scope** ([`tracked`](fn@crate::tracked)),
//! the owner of what its handler takes, and the request's token is registered to that
//! scope. So a handler that leaks a guard or a token of any ownsync primitive is caught
//! when its request ends (that primitive breaks, or reclaims, naming the request), a
//! handler that panics holding the request's token gives it back (with a `WARN`, under
//! the `tracing` feature) instead of relying on the unwinding to drop it, and a request
//! cut short (an outer timeout dropping its future) releases its holds as their owner.
//! A cut-short request is not an error: its token comes back as with tower's layer.
//!
//! Two modes, told apart by type:
//! - **[`Reclaiming`]** (the default): the layer's own tokens use
//!   [`AbandonPolicy::Reclaim`]: they guard no data, so a
//!   token abandoned by a panicking request goes back to the pool, with a `WARN`. The
//!   layer cannot fail, so the service's error is the inner service's.
//! - **[`Breaking`]** (`.break_on_abandon()`, or a limiter of your own with
//!   [`GlobalCapacityLimitLayer::from_limiter`]): the first abandoned token breaks the
//!   limiter, and every waiting and later request fails at once with
//!   [`AcquireError::Broken`], naming the request that abandoned it, why and where. The
//!   error is a [`BoxError`]; with the `http` feature, [`unavailable`] answers it with
//!   503 and the error's text, ready for axum's `HandleErrorLayer`. Repair the limiter
//!   (after fixing what broke it) with [`CapacityLimiter::try_repair`], reaching it by
//!   [`CapacityLimitLayer::limiters`] or [`GlobalCapacityLimitLayer::limiter`].
//!
//! A request's scope is nested in the task that polls it if that task is tracked too:
//! then what the handler still holds when the request completes (a guard carried by the
//! response, say) passes to that task, whose exit decides, as for any nested scope.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};

use tower_layer::Layer;
use tower_service::Service;

use crate::core::AbandonPolicy;
use crate::error::AcquireError;
use crate::limiter::CapacityLimiter;
use crate::limiter::request::{RequestHold, Requests, Reserved};
use crate::tracked::{Tracked, tracked};

/// The error type of a [`Breaking`] limited service: the inner service's error, or an
/// [`AcquireError`] from the limiter (boxed, as tower's own fallible layers do).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The default mode: the layer's limiter reclaims abandoned tokens and never fails, so
/// the service's error type is the inner service's. See the [module docs](self).
///
/// ```
/// use ownsync::tower::{CapacityLimitLayer, Reclaiming};
/// let layer: CapacityLimitLayer<Reclaiming> = CapacityLimitLayer::new(8);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Reclaiming;

/// The breaking mode: the first abandoned token breaks the limiter and every request
/// after it fails with [`AcquireError::Broken`] (as a [`BoxError`]) until it is
/// repaired. See the [module docs](self).
///
/// ```
/// use ownsync::tower::{Breaking, CapacityLimitLayer};
/// let layer: CapacityLimitLayer<Breaking> = CapacityLimitLayer::new(8).break_on_abandon();
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Breaking;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Reclaiming {}
    impl Sealed for super::Breaking {}
}

/// A mode of the layer: [`Reclaiming`] or [`Breaking`] (sealed).
pub trait LimitMode: sealed::Sealed + Send + Sync + 'static {
    /// The abandon policy of the limiters a layer of this mode makes.
    const POLICY: AbandonPolicy;
}

impl LimitMode for Reclaiming {
    const POLICY: AbandonPolicy = AbandonPolicy::Reclaim;
}

impl LimitMode for Breaking {
    const POLICY: AbandonPolicy = AbandonPolicy::Break;
}

/// Limits each wrapped service to `max` requests in flight, with a limiter of its own
/// per service, as tower's `ConcurrencyLimitLayer` does. For one limit shared by every
/// service the layer wraps, use [`GlobalCapacityLimitLayer`].
///
/// ```
/// use ownsync::tower::CapacityLimitLayer;
/// use std::convert::Infallible;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Infallible> {
/// let service = ServiceBuilder::new()
///     .layer(CapacityLimitLayer::new(8))
///     .service(service_fn(|name: String| async move { Ok::<_, Infallible>(name.len()) }));
/// assert_eq!(service.oneshot("ownsync".to_owned()).await?, 7); // the error is Infallible
/// # Ok(())
/// # }
/// ```
pub struct CapacityLimitLayer<M = Reclaiming> {
    max: usize,
    /// The limiters made so far ([`Breaking`] only, for [`limiters`](Self::limiters)).
    made: Option<Arc<std::sync::Mutex<Vec<Weak<Requests>>>>>,
    mode: PhantomData<fn() -> M>,
}

impl CapacityLimitLayer {
    /// A layer that gives each service it wraps its own limiter of `max` tokens (as
    /// `ConcurrencyLimitLayer::new`), in the [`Reclaiming`] mode.
    ///
    /// # Panics
    /// When it wraps a service, if `max` exceeds `Semaphore::MAX_PERMITS`.
    ///
    /// ```
    /// let layer = ownsync::tower::CapacityLimitLayer::new(16);
    /// assert_eq!(layer.max(), 16);
    /// ```
    pub fn new(max: usize) -> Self {
        CapacityLimitLayer { max, made: None, mode: PhantomData }
    }

    /// The same layer in the [`Breaking`] mode: its limiters break on the first
    /// abandoned token, and its services' error is a [`BoxError`].
    ///
    /// ```
    /// let layer = ownsync::tower::CapacityLimitLayer::new(4).break_on_abandon();
    /// assert!(layer.limiters().is_empty()); // none made yet
    /// ```
    pub fn break_on_abandon(self) -> CapacityLimitLayer<Breaking> {
        CapacityLimitLayer { max: self.max, made: Some(Arc::default()), mode: PhantomData }
    }
}

impl<M> CapacityLimitLayer<M> {
    /// How many requests each wrapped service admits at once.
    ///
    /// ```
    /// assert_eq!(ownsync::tower::CapacityLimitLayer::new(3).max(), 3);
    /// ```
    pub fn max(&self) -> usize {
        self.max
    }
}

impl CapacityLimitLayer<Breaking> {
    /// The limiters of the services this layer (or a clone of it) made that are still
    /// alive: to read their statistics, or to [`try_repair`](CapacityLimiter::try_repair)
    /// one that broke.
    ///
    /// ```
    /// use tower::Layer;
    /// let layer = ownsync::tower::CapacityLimitLayer::new(2).break_on_abandon();
    /// let service = layer.layer(tower::service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) }));
    /// for limiter in layer.limiters() {
    ///     assert_eq!(limiter.try_repair(), Err(ownsync::RepairError::NotBroken));
    /// }
    /// assert_eq!(layer.limiters().len(), 1);
    /// drop(service);
    /// assert!(layer.limiters().is_empty());
    /// ```
    pub fn limiters(&self) -> Vec<CapacityLimiter> {
        let made = self.made.as_ref().expect("a breaking layer keeps its limiters");
        let made = made.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        made.iter().filter_map(Weak::upgrade).map(|requests| requests.limiter().clone()).collect()
    }
}

impl<M> Clone for CapacityLimitLayer<M> {
    fn clone(&self) -> Self {
        CapacityLimitLayer { max: self.max, made: self.made.clone(), mode: PhantomData }
    }
}

impl<M: LimitMode> fmt::Debug for CapacityLimitLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimitLayer").field("max", &self.max).field("policy", &M::POLICY).finish()
    }
}

impl<S, M: LimitMode> Layer<S> for CapacityLimitLayer<M> {
    type Service = CapacityLimit<S, M>;

    fn layer(&self, inner: S) -> CapacityLimit<S, M> {
        let requests = Requests::new(CapacityLimiter::with_policy(self.max, M::POLICY));
        if let Some(made) = &self.made {
            let mut made = made.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            made.retain(|requests| requests.strong_count() > 0);
            made.push(Arc::downgrade(&requests));
        }
        CapacityLimit::with_requests(inner, requests)
    }
}

/// Limits all the services it wraps *together* to one limiter's tokens, as tower's
/// `GlobalConcurrencyLimitLayer` does. `new` makes a [`Reclaiming`] limiter;
/// [`from_limiter`](Self::from_limiter) takes one shared with the rest of the program,
/// in the [`Breaking`] mode (that limiter may break).
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
pub struct GlobalCapacityLimitLayer<M = Reclaiming> {
    requests: Arc<Requests>,
    mode: PhantomData<fn() -> M>,
}

impl GlobalCapacityLimitLayer {
    /// A layer whose services share one new [`Reclaiming`] limiter of `max` tokens.
    ///
    /// # Panics
    /// If `max` exceeds `Semaphore::MAX_PERMITS`.
    ///
    /// ```
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::new(16);
    /// assert_eq!(layer.limiter().total_tokens(), 16);
    /// assert_eq!(layer.limiter().policy(), ownsync::AbandonPolicy::Reclaim);
    /// ```
    #[track_caller]
    pub fn new(max: usize) -> Self {
        let limiter = CapacityLimiter::with_policy(max, AbandonPolicy::Reclaim);
        GlobalCapacityLimitLayer { requests: Requests::new(limiter), mode: PhantomData }
    }

    /// The same layer in the [`Breaking`] mode, on a new limiter of as many tokens that
    /// breaks on the first abandoned one (call it before sharing the limiter).
    ///
    /// ```
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::new(4).break_on_abandon();
    /// assert_eq!(layer.limiter().policy(), ownsync::AbandonPolicy::Break);
    /// ```
    #[track_caller]
    pub fn break_on_abandon(self) -> GlobalCapacityLimitLayer<Breaking> {
        GlobalCapacityLimitLayer::from_limiter(CapacityLimiter::new(self.limiter().total_tokens()))
    }
}

impl GlobalCapacityLimitLayer<Breaking> {
    /// A layer on a limiter shared with the rest of the program. The limiter may break
    /// (its policy is its own), so the layer is [`Breaking`].
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::with_name_and_policy(4, "handlers", ownsync::AbandonPolicy::Break);
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::from_limiter(limiter.clone());
    /// assert_eq!(layer.limiter().name(), Some("handlers"));
    /// ```
    pub fn from_limiter(limiter: CapacityLimiter) -> Self {
        GlobalCapacityLimitLayer { requests: Requests::new(limiter), mode: PhantomData }
    }
}

impl<M> GlobalCapacityLimitLayer<M> {
    /// The limiter the services share (for its statistics, or to repair it).
    ///
    /// ```
    /// let layer = ownsync::tower::GlobalCapacityLimitLayer::new(2);
    /// assert_eq!(layer.limiter().borrowed_tokens(), 0);
    /// ```
    pub fn limiter(&self) -> &CapacityLimiter {
        self.requests.limiter()
    }
}

impl<M> Clone for GlobalCapacityLimitLayer<M> {
    fn clone(&self) -> Self {
        GlobalCapacityLimitLayer { requests: self.requests.clone(), mode: PhantomData }
    }
}

impl<M> fmt::Debug for GlobalCapacityLimitLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalCapacityLimitLayer").field("limiter", self.limiter()).finish()
    }
}

impl<S, M> Layer<S> for GlobalCapacityLimitLayer<M> {
    type Service = CapacityLimit<S, M>;

    fn layer(&self, inner: S) -> CapacityLimit<S, M> {
        CapacityLimit::with_requests(inner, self.requests.clone())
    }
}

/// `Sync` as well as `Send`, so that a `CapacityLimit` is `Sync` when its service is
/// (axum's `Router::layer` requires it).
type Reserving = Pin<Box<dyn Future<Output = Result<Reserved, AcquireError>> + Send + Sync>>;

enum Admission {
    Idle,
    Reserving(Reserving),
    Admitted(Reserved),
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
pub struct CapacityLimit<S, M = Reclaiming> {
    inner: S,
    requests: Arc<Requests>,
    admission: Admission,
    mode: PhantomData<fn() -> M>,
}

impl<S> CapacityLimit<S, Breaking> {
    /// Wraps `inner` so that at most the limiter's tokens of requests are in flight. The
    /// limiter is the caller's and may break: the service is [`Breaking`].
    ///
    /// ```
    /// let service = ownsync::tower::CapacityLimit::new((), ownsync::CapacityLimiter::new(1));
    /// assert_eq!(service.limiter().total_tokens(), 1);
    /// ```
    pub fn new(inner: S, limiter: CapacityLimiter) -> Self {
        CapacityLimit::with_requests(inner, Requests::new(limiter))
    }
}

impl<S, M> CapacityLimit<S, M> {
    fn with_requests(inner: S, requests: Arc<Requests>) -> Self {
        CapacityLimit { inner, requests, admission: Admission::Idle, mode: PhantomData }
    }

    /// The limiter.
    ///
    /// ```
    /// let service = ownsync::tower::CapacityLimit::new((), ownsync::CapacityLimiter::new(1));
    /// assert!(!service.limiter().is_broken());
    /// ```
    pub fn limiter(&self) -> &CapacityLimiter {
        self.requests.limiter()
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

    /// Reserves the next request's token (once), waiting in FIFO order.
    fn poll_admission(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        loop {
            match &mut self.admission {
                Admission::Idle => {
                    let (requests, site) = (self.requests.clone(), crate::owner::caller_site());
                    self.admission = Admission::Reserving(Box::pin(requests.reserve(site)));
                }
                Admission::Reserving(reserving) => match ready!(reserving.as_mut().poll(cx)) {
                    Ok(reserved) => self.admission = Admission::Admitted(reserved),
                    Err(err) => {
                        self.admission = Admission::Idle;
                        return Poll::Ready(Err(err));
                    }
                },
                Admission::Admitted(_) => return Poll::Ready(Ok(())),
            }
        }
    }

    /// Starts a request with the token `poll_ready` reserved.
    fn start<Request>(&mut self, request: Request) -> ResponseFuture<S::Future, M>
    where
        S: Service<Request>,
    {
        let Admission::Admitted(reserved) = std::mem::replace(&mut self.admission, Admission::Idle) else {
            panic!("CapacityLimit::call without a successful poll_ready first");
        };
        let future = self.inner.call(request);
        ResponseFuture {
            request: tracked(RequestFuture { inner: future, token: Token::Reserved(reserved) }),
            mode: PhantomData,
        }
    }
}

/// A clone has its own admission: a token reserved by the original stays with it.
impl<S: Clone, M> Clone for CapacityLimit<S, M> {
    fn clone(&self) -> Self {
        CapacityLimit::with_requests(self.inner.clone(), self.requests.clone())
    }
}

impl<S: fmt::Debug, M> fmt::Debug for CapacityLimit<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimit")
            .field("inner", &self.inner)
            .field("limiter", self.limiter())
            .field("admitted", &matches!(self.admission, Admission::Admitted(_)))
            .finish()
    }
}

/// The [`Reclaiming`] service: it cannot fail, so its error is the inner service's.
impl<S, Request> Service<Request> for CapacityLimit<S, Reclaiming>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Reclaiming>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Err(err) = ready!(self.poll_admission(cx)) {
            // A reclaiming limiter never breaks, and nothing can close a limiter.
            unreachable!("the layer's reclaiming limiter failed: {err}");
        }
        self.inner.poll_ready(cx)
    }

    /// # Panics
    /// If `poll_ready` did not return `Ready(Ok(()))` first (tower's contract).
    fn call(&mut self, request: Request) -> Self::Future {
        self.start(request)
    }
}

/// The [`Breaking`] service: its error is the limiter's (broken) or the inner service's.
impl<S, Request> Service<Request> for CapacityLimit<S, Breaking>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, Breaking>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        ready!(self.poll_admission(cx))?;
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// # Panics
    /// If `poll_ready` did not return `Ready(Ok(()))` first (tower's contract).
    fn call(&mut self, request: Request) -> Self::Future {
        self.start(request)
    }
}

/// Where a request's token is: reserved by `poll_ready`, held by the request's scope
/// from its first poll, and given back when the request finishes.
enum Token {
    Reserved(Reserved),
    Held(#[expect(dead_code, reason = "kept for its drop: the token goes back then")] RequestHold),
    Returned,
}

pin_project_lite::pin_project! {
    /// The inner response future with its token, polled inside the request's scope.
    struct RequestFuture<F> {
        #[pin]
        inner: F,
        token: Token,
    }
}

impl<F: Future> Future for RequestFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Token::Reserved(_) = this.token {
            let Token::Reserved(reserved) = std::mem::replace(this.token, Token::Returned) else {
                unreachable!("checked above");
            };
            // Polled inside the request's scope: it answers for the token from now on.
            *this.token = Token::Held(reserved.hold_here());
        }
        let output = ready!(this.inner.poll(cx));
        // Done: the token goes back now, while the scope still owns it.
        *this.token = Token::Returned;
        Poll::Ready(output)
    }
}

pin_project_lite::pin_project! {
    /// The response of a [`CapacityLimit`] service: the request, run as a tracked scope
    /// that holds the request's token until it finishes or is dropped.
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
    pub struct ResponseFuture<F: Future, M = Reclaiming> {
        #[pin]
        request: Tracked<RequestFuture<F>>,
        mode: PhantomData<fn() -> M>,
    }
}

impl<F: Future, M> ResponseFuture<F, M> {
    /// The owner the request runs as: what its handler takes is registered to it, and
    /// errors about what it abandoned name it.
    ///
    /// ```
    /// use tower::{Service, ServiceExt, service_fn};
    /// # futures::executor::block_on(async {
    /// let echo = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    /// let mut service = ownsync::tower::CapacityLimit::new(echo, ownsync::CapacityLimiter::new(1));
    /// let response = service.ready().await.unwrap().call(1);
    /// assert!(response.owner().is_task());
    /// # });
    /// ```
    pub fn owner(&self) -> crate::id::OwnerId {
        self.request.owner()
    }
}

impl<F: Future<Output = Result<T, E>>, T, E> Future for ResponseFuture<F, Reclaiming> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().request.poll(cx)
    }
}

impl<F: Future<Output = Result<T, E>>, T, E: Into<BoxError>> Future for ResponseFuture<F, Breaking> {
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().request.poll(cx).map_err(Into::into)
    }
}

impl<F: Future, M> fmt::Debug for ResponseFuture<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The scope's `Debug` names its owner without publishing it (no side effect).
        f.debug_struct("ResponseFuture").field("request", &self.request).finish()
    }
}

/// Answers a [`Breaking`] service's error for axum's `HandleErrorLayer` (feature `http`):
/// `503 Service Unavailable` with the error's text if the limiter failed (it is broken:
/// the text names who broke it, why and where), `500 Internal Server Error` with the
/// text for an error of the inner service.
///
/// ```
/// # futures::executor::block_on(async {
/// use ownsync::tower::{BoxError, unavailable};
/// let (status, text) = unavailable(BoxError::from("the database is down")).await;
/// assert_eq!((status.as_u16(), text.as_str()), (500, "the database is down\n"));
/// # });
/// ```
///
/// With axum: `.layer(ServiceBuilder::new().layer(HandleErrorLayer::new(unavailable))
/// .layer(CapacityLimitLayer::new(64).break_on_abandon()))`.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub async fn unavailable(err: BoxError) -> (http::StatusCode, String) {
    let status = if err.is::<AcquireError>() {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        http::StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, format!("{err}\n"))
}
