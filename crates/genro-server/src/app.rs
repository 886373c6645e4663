//! What the server serves: an axum `Router`, or any tower service as an [`AsgiApplication`]
//! ([`IntoApplication`]), each put inside the [`RequestLayers`] every request passes.
//!
//! The types here other than those two are what a served application's type is made of; a
//! user names them only to write an `IntoApplication` of their own.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use genro_envelope::{CancelLayer, CancelService};
use genro_errors::{BoxError, RenderedBody};
use genro_stack::GenroLayer;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{
    filter::{Filter, FilterLayer, Predicate},
    limit::GlobalConcurrencyLimitLayer,
    load_shed::LoadShedLayer,
    timeout::TimeoutLayer,
    util::option_layer,
    Layer, Service, ServiceBuilder,
};

pub use crate::body::{BodyReadTimeout, IncomingBody};
use crate::config::LimitsSection;

/// The request body an application receives: the client's, with the body read timeout
/// (`[limits] body_read_timeout`) and the body limit (`[limits] body_limit`: reading past it
/// fails with http-body-util's `LengthLimitError`, which axum's extractors answer with 413).
pub type RequestBody = http_body_util::Limited<IncomingBody>;

/// The layers every request of the application passes, as the configuration sets them: the
/// genro stack (envelope, registry, metrics, errors) outside, and inside the error layer the
/// cancellation (the debug console's, and the drain's for what outlives it), the body limit by
/// `Content-Length`, the request timeout and the concurrency limit, so that each refusal is
/// rendered (503, 413, 504, 503) with an error id and a request id.
#[derive(Clone, Debug)]
pub struct RequestLayers {
    pub(crate) genro: GenroLayer,
    pub(crate) body_limit: u64,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) concurrency: Option<GlobalConcurrencyLimitLayer>,
}

impl RequestLayers {
    /// The genro stack, with the body limit, request timeout and concurrency limit `limits`
    /// sets.
    pub(crate) fn new(genro: GenroLayer, limits: &LimitsSection) -> Self {
        Self {
            genro,
            body_limit: limits.body_limit,
            timeout: limits.request_timeout,
            concurrency: (limits.concurrency_limit > 0)
                .then(|| GlobalConcurrencyLimitLayer::new(limits.concurrency_limit)),
        }
    }

    /// Wraps `service` in the request layers.
    pub fn wrap<S>(&self, service: S) -> Wrapped<S> {
        let inner = ServiceBuilder::new()
            .layer(CancelLayer::new())
            .layer(FilterLayer::new(BodyLimit(self.body_limit)))
            .layer(option_layer(self.timeout.map(TimeoutLayer::new)))
            .layer(option_layer(self.concurrency.clone().map(|c| {
                ServiceBuilder::new().layer(LoadShedLayer::new()).layer(c)
            })))
            .service(ErrInto(service));
        self.genro.layer(inner)
    }
}

/// Refuses a request whose `Content-Length` is over `[limits] body_limit` before the handler
/// runs, with [`BodyTooLarge`] (413). A body that says nothing of its length, or says less
/// than it sends, is cut by [`RequestBody`] instead.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(u64);

impl<B> Predicate<Request<B>> for BodyLimit {
    type Request = Request<B>;

    #[inline]
    fn check(&mut self, req: Request<B>) -> Result<Request<B>, BoxError> {
        let Some(length) = req.headers().get(http::header::CONTENT_LENGTH) else {
            return Ok(req);
        };
        match length.to_str().ok().and_then(|l| l.parse::<u64>().ok()) {
            Some(length) if length > self.0 => Err(Box::new(BodyTooLarge {
                length,
                limit: self.0,
            })),
            _ => Ok(req),
        }
    }
}

/// The error of a request whose `Content-Length` is over `[limits] body_limit`: answered 413,
/// counted as `errors_total{kind="error",type="body_limit"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The length the request declared.
    pub length: u64,
    /// The limit.
    pub limit: u64,
}

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body is {} bytes, over the limit of {} bytes",
            self.length, self.limit
        )
    }
}

impl std::error::Error for BodyTooLarge {}

/// A service whose errors are boxed, so that the optional layers around it share one error
/// type.
#[derive(Clone, Debug)]
pub struct ErrInto<S>(S);

impl<S, R> Service<R> for ErrInto<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ErrIntoFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: R) -> Self::Future {
        ErrIntoFuture {
            inner: self.0.call(req),
        }
    }
}

pin_project! {
    /// Response future of [`ErrInto`].
    #[derive(Debug)]
    pub struct ErrIntoFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for ErrIntoFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}

type Limits<S> = tower::util::Either<
    tower::load_shed::LoadShed<tower::limit::ConcurrencyLimit<ErrInto<S>>>,
    ErrInto<S>,
>;

type Timed<S> = tower::util::Either<tower::timeout::Timeout<Limits<S>>, Limits<S>>;

/// The service inside the error layer: the user's, behind the cancellation, the body limit, and
/// the optional request timeout and concurrency limit.
pub type Inner<S> = CancelService<Filter<Timed<S>, BodyLimit>>;

/// A service inside the whole request path.
pub type Wrapped<S> = <GenroLayer as Layer<Inner<S>>>::Service;

/// Something the server can serve: an axum `Router` (its routes get the request layers inside
/// the routing, so route templates reach metrics), or any tower service through
/// [`AsgiApplication::from_service`].
pub trait IntoApplication {
    /// The service the application becomes.
    type Service: Service<
            Request<RequestBody>,
            Response = Response<Self::Body>,
            Error = Infallible,
            Future = Self::Future,
        > + Clone
        + Send
        + Sync
        + 'static;
    /// Its response future.
    type Future: Future<Output = Result<Response<Self::Body>, Infallible>> + Send + 'static;
    /// Its response body.
    type Body: http_body::Body<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    /// Its response body's error.
    type BodyError: Into<BoxError>;

    /// Puts the application inside `layers`.
    fn into_service(self, layers: &RequestLayers) -> Self::Service;
}

#[cfg(feature = "axum")]
impl IntoApplication for axum::Router {
    type Service = Self;
    type Future = axum::routing::future::RouteFuture<Infallible>;
    type Body = axum::body::Body;
    type BodyError = axum::Error;

    fn into_service(self, layers: &RequestLayers) -> Self {
        let layers = layers.clone();
        // `Router::layer` applies to every route and the fallback, inside the routing.
        // `with_state(())` turns the handlers into routes once, as `axum::serve` does:
        // unconverted, axum would make them (and apply the layers) again on every request.
        self.layer(tower::layer::layer_fn(move |route| layers.wrap(route)))
            .with_state(())
    }
}

/// An application that is not an axum `Router` (tonic routes, a hyper service): a tower
/// service the server runs inside the request layers.
///
/// ```no_run
/// # async fn example(server: genro_server::AsgiServer) -> Result<(), genro_server::Error> {
/// use genro_server::AsgiApplication;
///
/// let service = tower::service_fn(|_req: http::Request<_>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from("hi")))
/// });
/// server.serve(AsgiApplication::from_service(service)).await
/// # }
/// ```
///
/// Its response body must be one the error layer can write an error into
/// ([`RenderedBody`]): axum's and tonic's are.
#[derive(Clone, Debug)]
pub struct AsgiApplication<S>(S);

impl<S> AsgiApplication<S> {
    /// `service`, to serve.
    pub fn from_service(service: S) -> Self {
        Self(service)
    }

    /// The service.
    pub fn into_inner(self) -> S {
        self.0
    }
}

impl<S, B> IntoApplication for AsgiApplication<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RenderedBody + http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = Wrapped<S>;
    type Future = <Wrapped<S> as Service<Request<RequestBody>>>::Future;
    type Body = genro_stack::ResponseBody<B>;
    type BodyError = B::Error;

    fn into_service(self, layers: &RequestLayers) -> Self::Service {
        layers.wrap(self.0)
    }
}
