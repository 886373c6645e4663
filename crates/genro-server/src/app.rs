//! `AsgiApplication`: the user's service inside the canonical request path, behind the
//! server's own endpoints (metrics, health), with the server reachable from every handler.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use genro_errors::{BoxError, RenderedBody};
use genro_metrics::{EndpointFuture, MetricsCollector, MetricsEndpoint};
use genro_registry::EnvelopeRegistry;
use genro_stack::GenroLayer;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower::{
    limit::GlobalConcurrencyLimitLayer, load_shed::LoadShedLayer, timeout::TimeoutLayer,
    util::option_layer, Layer, Service, ServiceBuilder,
};

use crate::Config;

/// What a handler can reach of the server: its configuration, registry and metrics, and the
/// shutdown signal. Every request carries one in its extensions; with axum, take it as an
/// extractor.
///
/// ```
/// use genro_server::ServerContext;
///
/// async fn about(server: ServerContext) -> String {
///     let config = server.config();
///     let name = config.application.app_name().unwrap_or("unnamed");
///     format!("{name}: {} requests in flight\n", server.registry().len())
/// }
/// # let _ = axum::Router::<()>::new().route("/about", axum::routing::get(about));
/// ```
#[derive(Clone)]
pub struct ServerContext {
    pub(crate) shared: Arc<Shared>,
}

/// The server's state, shared by the context, the handle and the connections.
pub(crate) struct Shared {
    pub(crate) config: ArcSwap<Config>,
    pub(crate) registry: EnvelopeRegistry,
    pub(crate) metrics: MetricsCollector,
    pub(crate) ready: AtomicBool,
    pub(crate) lifecycle: tokio::sync::watch::Sender<crate::server::Lifecycle>,
    pub(crate) bound: tokio::sync::watch::Sender<crate::Bound>,
    pub(crate) executors: crate::executor::Executors,
}

impl Shared {
    /// Starts the drain, once: later calls change nothing.
    pub(crate) fn begin_drain(&self) {
        self.ready.store(false, Ordering::Release);
        self.lifecycle.send_if_modified(|l| {
            let first = *l < crate::server::Lifecycle::Draining;
            if first {
                *l = crate::server::Lifecycle::Draining;
            }
            first
        });
    }
}

/// One thread per CPU for a setting of 0, else the setting.
pub(crate) fn per_cpu(setting: usize) -> usize {
    match setting {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
}

impl ServerContext {
    /// The configuration in force (it can change on reload; hold the `Arc` briefly).
    #[must_use]
    pub fn config(&self) -> Arc<Config> {
        self.shared.config.load_full()
    }

    /// The registry of in-flight requests.
    #[must_use]
    pub fn registry(&self) -> &EnvelopeRegistry {
        &self.shared.registry
    }

    /// The metrics collector: register your own metrics in `metrics().registry()`.
    #[must_use]
    pub fn metrics(&self) -> &MetricsCollector {
        &self.shared.metrics
    }

    /// The executors: `run_in_executor` for blocking work, `run_job` for process jobs.
    #[must_use]
    pub fn executors(&self) -> &crate::executor::Executors {
        &self.shared.executors
    }

    /// The addresses the server listens on (known once it has bound them, before the
    /// `on_startup` hooks run).
    #[must_use]
    pub fn bound(&self) -> crate::Bound {
        *self.shared.bound.borrow()
    }

    /// Whether the server reports itself ready (false while starting and while draining).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// Resolves when the server begins to shut down: streaming and WebSocket handlers await it
    /// to finish their work and end cleanly.
    pub async fn shutdown_signal(&self) {
        let mut rx = self.shared.lifecycle.subscribe();
        // The sender lives as long as `Shared`, which this context holds.
        let _ = rx
            .wait_for(|l| *l >= crate::server::Lifecycle::Draining)
            .await;
    }
}

impl fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContext")
            .field("ready", &self.is_ready())
            .field("in_flight", &self.shared.registry.len())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ServerContext {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerContext missing: the app is not served by genro_server::AsgiServer",
        ))
    }
}

/// The layers of the canonical request path, as the configuration sets them: the genro stack
/// (envelope, registry, metrics, errors) outside, and inside the error layer the request
/// timeout and the concurrency limit, so that their refusals are rendered (504, 503) with an
/// error id.
#[derive(Clone, Debug)]
pub struct RequestPath {
    pub(crate) genro: GenroLayer,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) concurrency: Option<GlobalConcurrencyLimitLayer>,
}

impl RequestPath {
    /// Wraps `service` in the canonical request path.
    pub fn wrap<S>(&self, service: S) -> Wrapped<S> {
        let inner = ServiceBuilder::new()
            .layer(option_layer(self.timeout.map(TimeoutLayer::new)))
            .layer(option_layer(self.concurrency.clone().map(|c| {
                ServiceBuilder::new().layer(LoadShedLayer::new()).layer(c)
            })))
            .service(ErrInto(service));
        self.genro.layer(inner)
    }
}

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

/// The service inside the error layer: the user's, behind the optional request timeout and
/// concurrency limit.
pub type Inner<S> = tower::util::Either<tower::timeout::Timeout<Limits<S>>, Limits<S>>;

/// A service inside the whole request path.
pub type Wrapped<S> = <GenroLayer as Layer<Inner<S>>>::Service;

/// Something the server can serve: an axum `Router` (its routes get the request path inside
/// the routing, so route templates reach metrics), or any tower service through
/// [`AsgiApplication::from_service`].
pub trait IntoApplication {
    /// The service the application becomes.
    type Service: Service<
            Request<tower_http::body::Limited<hyper::body::Incoming>>,
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

    /// Puts the application inside `path`.
    fn into_service(self, path: &RequestPath) -> Self::Service;
}

#[cfg(feature = "axum")]
impl IntoApplication for axum::Router {
    type Service = Self;
    type Future = axum::routing::future::RouteFuture<Infallible>;
    type Body = axum::body::Body;
    type BodyError = axum::Error;

    fn into_service(self, path: &RequestPath) -> Self {
        let path = path.clone();
        // `Router::layer` applies to every route and the fallback, inside the routing.
        // `with_state(())` turns the handlers into routes once, as `axum::serve` does:
        // unconverted, axum would make them (and apply the layers) again on every request.
        self.layer(tower::layer::layer_fn(move |route| path.wrap(route)))
            .with_state(())
    }
}

/// A tower service to serve, inside the request path; see [`AsgiApplication::from_service`].
#[derive(Clone, Debug)]
pub struct ServiceApp<S>(S);

impl<S, B> IntoApplication for ServiceApp<S>
where
    S: Service<Request<tower_http::body::Limited<hyper::body::Incoming>>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RenderedBody + http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = Wrapped<S>;
    type Future =
        <Wrapped<S> as Service<Request<tower_http::body::Limited<hyper::body::Incoming>>>>::Future;
    type Body = genro_stack::ResponseBody<B>;
    type BodyError = B::Error;

    fn into_service(self, path: &RequestPath) -> Self::Service {
        path.wrap(self.0)
    }
}

/// The application the server runs: the user's service inside the request path, behind the
/// server's own endpoints. It is a tower service; [`AsgiServer`](crate::AsgiServer) builds it.
pub struct AsgiApplication<S> {
    inner: S,
    builtins: Arc<Builtins>,
}

impl AsgiApplication<()> {
    /// Serves a tower service that is not an axum `Router` (tonic routes, a hyper service):
    /// `server.run(AsgiApplication::from_service(svc))`. Its response body must be one the
    /// error layer can write an error into ([`RenderedBody`]).
    pub fn from_service<S>(service: S) -> ServiceApp<S> {
        ServiceApp(service)
    }
}

impl<S: Clone> Clone for AsgiApplication<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            builtins: self.builtins.clone(),
        }
    }
}

impl<S> fmt::Debug for AsgiApplication<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsgiApplication")
            .field("metrics", &self.builtins.metrics.as_ref().map(|(p, _)| p))
            .field("health", &self.builtins.health)
            .finish_non_exhaustive()
    }
}

/// The server's own endpoints, answered before the application sees the request (they are not
/// enveloped or measured).
pub(crate) struct Builtins {
    pub(crate) metrics: Option<(String, MetricsEndpoint)>,
    pub(crate) health: Option<(String, String)>,
    pub(crate) context: ServerContext,
}

impl<S> AsgiApplication<S> {
    pub(crate) fn new(inner: S, builtins: Arc<Builtins>) -> Self {
        Self { inner, builtins }
    }
}

/// Response body of [`AsgiApplication`]: the application's, or one of the server's endpoints.
pub type AppBody<B> = Either<B, Full<Bytes>>;

pin_project! {
    #[project = StateProj]
    enum State<F> {
        App { #[pin] future: F },
        Metrics { future: EndpointFuture },
        Ready { response: Option<Response<Full<Bytes>>> },
    }
}

pin_project! {
    /// Response future of [`AsgiApplication`]: the application's, or one of the server's own
    /// endpoints'.
    pub struct AppFuture<F> {
        #[pin]
        state: State<F>,
    }
}

impl<F> fmt::Debug for AppFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppFuture").finish_non_exhaustive()
    }
}

impl<F, B> Future for AppFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<AppBody<B>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::App { future } => {
                future.poll(cx).map(|r| r.map(|res| res.map(Either::Left)))
            }
            StateProj::Metrics { future } => future
                .as_mut()
                .poll(cx)
                .map(|r| r.map(|res| res.map(Either::Right))),
            StateProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("polled after completion")
                .map(Either::Right))),
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl Builtins {
    pub(crate) fn health_response(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        let (live, ready) = self.health.as_ref()?;
        if path == live {
            Some(plain(StatusCode::OK, "live\n"))
        } else if path == ready {
            Some(if self.context.is_ready() {
                plain(StatusCode::OK, "ready\n")
            } else {
                let mut res = plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n");
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            })
        } else {
            None
        }
    }
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for AsgiApplication<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<AppBody<B>>;
    type Error = Infallible;
    type Future = AppFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let builtins = &*self.builtins;
        let path = req.uri().path();
        if let Some((endpoint, metrics)) = &builtins.metrics {
            if path == endpoint {
                return AppFuture {
                    state: State::Metrics {
                        future: metrics.clone().call(req),
                    },
                };
            }
        }
        if let Some(response) = builtins.health_response(path) {
            return AppFuture {
                state: State::Ready {
                    response: Some(response),
                },
            };
        }
        req.extensions_mut().insert(builtins.context.clone());
        AppFuture {
            state: State::App {
                future: self.inner.call(req),
            },
        }
    }
}
