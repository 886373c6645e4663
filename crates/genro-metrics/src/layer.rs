use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use genro_envelope::{
    plumbing::{is_grpc, BodyWatch, ResponseWatch, Synthesized, WatchedBody, WatchedFuture},
    RequestEnvelope,
};
use http::{Request, Response, Uri};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    collector::{HttpMetrics, RouteHandles, RouteSource},
    labels::{method_index, UNMATCHED},
    MetricsCollector,
};

/// A [`Layer`] that records the HTTP metrics of every request in a [`MetricsCollector`]:
///
/// | metric | labels |
/// |---|---|
/// | `http_requests_total` | `method`, `route`, `status` |
/// | `http_request_duration_seconds` (histogram, until the body ends) | `method`, `route` |
/// | `http_response_size_bytes` (histogram) | `method`, `route` |
/// | `http_requests_in_flight` (gauge) | — |
///
/// Labels are bounded whatever clients send, and only the server's own routing makes them:
/// - `method` is one of the nine standard methods, or `other`;
/// - `route` is a template, never a raw path: axum's `MatchedPath` (feature `axum`, on by
///   default; nested routers included), else a route set on the request's envelope
///   ([`RequestEnvelope::set_route`]), else for gRPC the `/package.Service/Method` path of a
///   method the server proved it implements: the response itself is gRPC (`content-type:
///   application/grpc…`), came from the application rather than from a genro layer, and is not
///   `grpc-status: 12` (UNIMPLEMENTED, tonic's answer to unknown services and methods). A request
///   that only *claims* to be gRPC never names a label. Everything else is `unmatched`. Past the
///   collector's cap on distinct claimed routes, `overflow`; router templates are never capped.
///
/// If a successful response ever gets `route="unmatched"`, the layer logs one warning that
/// says why (the `axum` feature is off, or the layer sits outside the router), so a setup that
/// labels every route `unmatched` never goes unnoticed.
///
/// A request is counted when its response body ends (or is dropped), so streaming responses are
/// timed to their last byte; a request cancelled before its response leaves `in_flight` and is
/// not counted.
///
/// Under axum, add it with `Router::layer` (it then runs inside the routing and sees
/// `MatchedPath`).
#[derive(Clone)]
pub struct MetricsLayer {
    http: Arc<HttpMetrics>,
}

impl MetricsLayer {
    /// A layer recording into `collector`.
    #[must_use]
    pub fn new(collector: &MetricsCollector) -> Self {
        Self {
            http: collector.http().clone(),
        }
    }
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            http: self.http.clone(),
        }
    }
}

/// The service made by [`MetricsLayer`].
pub struct MetricsService<S> {
    inner: S,
    http: Arc<HttpMetrics>,
}

genro_envelope::inner_service!(MetricsService { http });

/// Where the route label comes from when it is not known when the request arrives.
enum LateRoute {
    /// The envelope, and whether the request claims to be gRPC (its path is then the
    /// envelope's).
    Envelope(Arc<RequestEnvelope>, bool),
    Grpc(Box<Uri>),
    Unknown,
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Whether `response` proves that the application implements the gRPC method of the request:
/// it is a gRPC response, made by the application (not rendered by a genro layer, which answers
/// any path), and not UNIMPLEMENTED.
fn implements_grpc_method<B>(response: &Response<B>) -> bool {
    is_grpc(response.headers())
        && response.extensions().get::<Synthesized>().is_none()
        && response
            .headers()
            .get(&GRPC_STATUS)
            .is_none_or(|s| s != "12")
}

impl LateRoute {
    fn of<B>(req: &Request<B>) -> Self {
        match (RequestEnvelope::from_request(req), is_grpc(req.headers())) {
            (Some(envelope), grpc) => Self::Envelope(envelope.clone(), grpc),
            (None, true) => Self::Grpc(Box::new(req.uri().clone())),
            (None, false) => Self::Unknown,
        }
    }

    /// The route label, and where it came from.
    fn label<'s, B>(&'s self, response: &Response<B>) -> (&'s str, RouteSource) {
        let grpc_path = |path: &'s str| {
            if implements_grpc_method(response) {
                (path, RouteSource::Claimed)
            } else {
                (UNMATCHED, RouteSource::Fixed)
            }
        };
        match self {
            Self::Envelope(envelope, grpc) => match envelope.route() {
                Some(route) => (route, RouteSource::Claimed),
                None if *grpc => grpc_path(envelope.path()),
                None => (UNMATCHED, RouteSource::Fixed),
            },
            Self::Grpc(uri) => grpc_path(uri.path()),
            Self::Unknown => (UNMATCHED, RouteSource::Fixed),
        }
    }

    /// The metric handles of this route, once the response is known.
    fn handles<B>(
        &self,
        http: &HttpMetrics,
        method: usize,
        response: &Response<B>,
    ) -> Arc<RouteHandles> {
        let (label, source) = self.label(response);
        if source == RouteSource::Fixed && response.status().as_u16() < 400 {
            warn_unmatched(http);
        }
        http.route(method, label, source)
    }
}

/// Logs, once per collector, that a successful response had no route template.
#[cold]
fn warn_unmatched(http: &HttpMetrics) {
    if !http
        .warned_unmatched
        .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            "MetricsLayer labelled a successful response route=\"unmatched\": it found no route \
             template. With axum, enable genro-metrics' `axum` feature (on by default) and add \
             the layer with Router::layer, inside the routing; elsewhere, set the route with \
             RequestEnvelope::set_route. Logged once."
        );
    }
}

/// The route of one request.
enum Route {
    /// Its handles: found when the request arrived (an axum route template), or once the
    /// response was known.
    Known(Arc<RouteHandles>),
    /// To be found from the response.
    Late(LateRoute, Arc<HttpMetrics>),
}

/// The measurement of one request, from [`plumbing::begin`](crate::plumbing::begin) until
/// dropped.
///
/// It counts the request in flight at once. Give it the response head with
/// [`respond`](Self::respond), then keep it in a [`WatchedBody`], which counts the body's bytes
/// into it; it records the request when dropped, at the end of the body or when the body is
/// dropped early.
/// Dropped before a response, it leaves `in_flight` and is not counted.
pub struct Measurement {
    route: Route,
    start: Instant,
    method: usize,
    /// 0 until there is a response.
    status: u16,
    bytes: u64,
}

impl Measurement {
    #[inline]
    fn new<B>(req: &Request<B>, http: &Arc<HttpMetrics>) -> Self {
        let method = method_index(req.method());
        #[cfg(feature = "axum")]
        if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
            let handles = http.route(method, path.as_str(), RouteSource::Template);
            return Self::start(Route::Known(handles), method, http);
        }
        Self::start(Route::Late(LateRoute::of(req), http.clone()), method, http)
    }

    /// A measurement of a request whose envelope is known: the envelope's route template is used
    /// rather than looked up again.
    fn enveloped<B>(
        req: &Request<B>,
        envelope: &Arc<RequestEnvelope>,
        http: &Arc<HttpMetrics>,
    ) -> Self {
        let method = method_index(req.method());
        #[cfg(feature = "axum")]
        if let Some(path) = envelope.matched_path() {
            let handles = http.route(method, path.as_str(), RouteSource::Template);
            return Self::start(Route::Known(handles), method, http);
        }
        let late = LateRoute::Envelope(envelope.clone(), is_grpc(req.headers()));
        Self::start(Route::Late(late, http.clone()), method, http)
    }

    #[inline]
    fn start(route: Route, method: usize, http: &HttpMetrics) -> Self {
        http.in_flight.inc();
        Self {
            route,
            // Read here rather than taken from an envelope: the envelope's start is tokio's
            // clock, which tests can pause, and a duration must come from one clock.
            start: Instant::now(),
            method,
            status: 0,
            bytes: 0,
        }
    }

    /// Learns the status, and the route if it was not known yet, from the response head.
    #[inline]
    pub fn respond<B>(&mut self, response: &Response<B>) {
        self.status = response.status().as_u16();
        if let Route::Late(late, http) = &self.route {
            self.route = Route::Known(late.handles(http, self.method, response));
        }
    }
}

impl fmt::Debug for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Measurement")
            .field("method", &crate::labels::METHODS[self.method])
            .field("status", &self.status)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Drop for Measurement {
    fn drop(&mut self) {
        let handles = match &self.route {
            Route::Known(handles) => handles,
            Route::Late(_, http) => {
                http.in_flight.dec();
                return;
            }
        };
        handles.in_flight.dec();
        if self.status != 0 {
            handles.count(self.status);
            handles.duration.observe(self.start.elapsed().as_secs_f64());
            #[allow(clippy::cast_precision_loss)] // exact below 2^53 bytes
            handles.size.observe(self.bytes as f64);
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let measurement = Measurement::new(&req, &self.http);
        ResponseFuture::new(self.inner.call(req), measurement)
    }
}

/// Response future of [`MetricsService`]: holds the measurement until the response is ready, then
/// hands it to the [`ResponseBody`].
pub type ResponseFuture<F> = WatchedFuture<F, Measurement>;

impl ResponseWatch for Measurement {
    type Body = Self;

    #[inline]
    fn on_response<B>(mut self, response: &mut Response<B>) -> Self {
        self.respond(response);
        self
    }
}

/// Response body of [`MetricsService`]: counts its bytes, and records the request when it ends, fails
/// or is dropped.
pub type ResponseBody<B> = WatchedBody<B, Measurement>;

impl BodyWatch for Measurement {
    #[inline]
    fn data(&mut self, len: usize) {
        self.bytes += len as u64;
    }
}

impl MetricsLayer {
    pub(crate) fn begin<B>(&self, req: &Request<B>) -> Measurement {
        Measurement::new(req, &self.http)
    }

    pub(crate) fn begin_enveloped<B>(
        &self,
        req: &Request<B>,
        envelope: &Arc<RequestEnvelope>,
    ) -> Measurement {
        Measurement::enveloped(req, envelope, &self.http)
    }
}
