use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Instant,
};

use genro_envelope::RequestEnvelope;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    collector::{HttpMetrics, RouteHandles},
    labels::{method_label, UNMATCHED},
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
/// Labels are bounded whatever clients send:
/// - `method` is one of the nine standard methods, or `other`;
/// - `route` is a template, never a raw path: axum's `MatchedPath` (feature `axum`; nested
///   routers included), else a route set on the request's envelope
///   ([`RequestEnvelope::set_route`]), else for gRPC the `/package.Service/Method` path of a
///   method the server implements; everything else is `unmatched`. Past the collector's cap on
///   distinct routes, `overflow`.
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
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics {
            inner,
            http: self.http.clone(),
        }
    }
}

/// The service made by [`MetricsLayer`].
pub struct Metrics<S> {
    inner: S,
    http: Arc<HttpMetrics>,
}

impl<S: Clone> Clone for Metrics<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            http: self.http.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Where the route label will come from, known at request time, read at response time.
///
/// Kept small (two words): it rides in every response future.
enum RouteSource {
    /// Found when the request arrived (an axum route template).
    #[cfg(feature = "axum")]
    Resolved(Arc<RouteHandles>),
    /// The envelope, and whether the request is gRPC (its path is then the envelope's).
    Envelope(Arc<RequestEnvelope>, bool),
    Grpc(Box<Uri>),
    Unknown,
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

impl RouteSource {
    fn of<B>(req: &Request<B>, http: &HttpMetrics, method: &'static str) -> Self {
        #[cfg(feature = "axum")]
        if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
            return Self::Resolved(http.matched(method, path));
        }
        #[cfg(not(feature = "axum"))]
        let _ = (http, method);
        match (
            RequestEnvelope::from_request(req),
            genro_envelope::is_grpc(req.headers()),
        ) {
            (Some(envelope), grpc) => Self::Envelope(envelope.clone(), grpc),
            (None, true) => Self::Grpc(Box::new(req.uri().clone())),
            (None, false) => Self::Unknown,
        }
    }

    /// The label, and whether its string lives as long as the router (a route template held in
    /// an `Arc`), so that its address can key a cache.
    fn label<'s, B>(&'s self, response: &Response<B>) -> (&'s str, bool) {
        // A gRPC path is a template only for methods that exist: tonic answers others with
        // `grpc-status: 12` (unimplemented), and those must not become series.
        let grpc_path = |path: &'s str| {
            let unimplemented = response
                .headers()
                .get(&GRPC_STATUS)
                .is_some_and(|s| s == "12");
            (!unimplemented).then_some(path)
        };
        match self {
            // Never asked: `handles` returns resolved handles as they are.
            #[cfg(feature = "axum")]
            Self::Resolved(handles) => (&handles.route.0, true),
            Self::Envelope(envelope, grpc) => match envelope.route() {
                Some(route) => (route, true),
                None if *grpc => (grpc_path(envelope.path()).unwrap_or(UNMATCHED), false),
                None => (UNMATCHED, false),
            },
            Self::Grpc(uri) => (grpc_path(uri.path()).unwrap_or(UNMATCHED), false),
            Self::Unknown => (UNMATCHED, false),
        }
    }
}

/// Counts one request in flight until dropped; also the request's handle on the metrics.
struct InFlight(Arc<HttpMetrics>);

impl InFlight {
    fn new(http: &Arc<HttpMetrics>) -> Self {
        http.in_flight.inc();
        Self(http.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

struct Pending {
    start: Instant,
    method: &'static str,
    route: RouteSource,
    in_flight: InFlight,
}

impl RouteSource {
    /// The metric handles of this request's route, once its response is known.
    fn handles<B>(
        self,
        http: &HttpMetrics,
        method: &'static str,
        response: &Response<B>,
    ) -> Arc<RouteHandles> {
        #[cfg(feature = "axum")]
        if let Self::Resolved(handles) = self {
            return handles;
        }
        match self.label(response) {
            (route, true) => http.route_by_address(method, route),
            (route, false) => http.route(method, route),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
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
        let method = method_label(req.method());
        let pending = Pending {
            start: Instant::now(),
            method,
            route: RouteSource::of(&req, &self.http, method),
            in_flight: InFlight::new(&self.http),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            pending: Some(pending),
        }
    }
}

pin_project! {
    /// Response future of [`Metrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F: fmt::Debug> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let done = this.pending.take().map(|p| {
            let handles = p.route.handles(&p.in_flight.0, p.method, &response);
            Done {
                handles,
                status: response.status().as_u16(),
                start: p.start,
                bytes: 0,
                _in_flight: p.in_flight,
            }
        });
        Poll::Ready(Ok(response.map(|inner| ResponseBody { inner, done })))
    }
}

/// Records the request when dropped: at the end of the body, or when the body is dropped early.
struct Done {
    handles: Arc<RouteHandles>,
    status: u16,
    start: Instant,
    bytes: u64,
    _in_flight: InFlight,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.handles.count(self.status);
        self.handles
            .duration
            .observe(self.start.elapsed().as_secs_f64());
        self.handles.size.observe(self.bytes as f64);
    }
}

pin_project! {
    /// Response body of [`Metrics`]: counts bytes, and records the request when it ends.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        done: Option<Done>,
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline(always)]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(done), Some(data)) = (this.done.as_mut(), frame.data_ref()) {
                    done.bytes += bytes::Buf::remaining(data) as u64;
                }
            }
            // The end, or a failure that ends it: record now rather than when dropped.
            None | Some(Err(_)) => drop(this.done.take()),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
