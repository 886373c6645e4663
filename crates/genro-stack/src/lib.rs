//! The whole genro request path as one tower layer.
//!
//! [`GenroLayer`] does what this stack does, in the same order and with the same results:
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(EnvelopeLayer::new())
//!     .layer(RegistryLayer::new(registry))
//!     .layer(MetricsLayer::new(&collector))
//!     .layer(ErrorLayer::new())
//! ```
//!
//! Every request gets its envelope and `x-request-id`, stays in the registry until its response
//! body ends, is measured until then, and any error or panic becomes one rendered response with
//! an error id. The four layers each wrap the request's future, and two of them the response
//! body; `GenroLayer` does the envelope, registry and metrics work in one future wrapper and one
//! body wrapper around the error layer's service, so a request pays for one future wrapper
//! instead of three and one body wrapper instead of two. The instruction-count harness of
//! genro-asgi (`benches/callgrind.sh`) measures both.
//!
//! Each part keeps its own configuration: pass a configured [`EnvelopeLayer`] or [`ErrorLayer`]
//! with [`GenroLayer::envelope`] and [`GenroLayer::errors`]. The separate layers stay the way to
//! take only some of the parts.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use genro_metrics::MetricsCollector;
//! use genro_registry::EnvelopeRegistry;
//! use genro_stack::GenroLayer;
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = EnvelopeRegistry::new();
//! let collector = MetricsCollector::new();
//! let app: Router = Router::new()
//!     .route("/hello", get(|| async { "Hello, World!" }))
//!     .layer(GenroLayer::new(&registry, &collector))
//!     .route_service("/metrics", collector.endpoint());
//!
//! let req = Request::get("/hello").header("x-request-id", "order-42").body(Body::empty()).unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-request-id"], "order-42");
//! assert_eq!(registry.len(), 1, "in flight until the body ends");
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "Hello, World!");
//! assert!(registry.is_empty());
//!
//! let metrics = app.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
//! let text = metrics.into_body().collect().await.unwrap().to_bytes();
//! let text = String::from_utf8_lossy(&text);
//! assert!(text.contains(r#"http_requests_total{method="GET",route="/hello",status="200"} 1"#));
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `axum`  | yes     | the parts' axum integration: the envelope extractor, route templates from `MatchedPath`, `IntoResponse` for `genro_errors::Error` |
//! | `tonic` | no      | the error layer under tonic |
//!
//! # Minimum supported Rust version
//!
//! 1.89.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use genro_envelope::{
    plumbing::{self as envelope, ResponseWatch, WatchedBody, WatchedFuture},
    taskdump::{TracePoint, Traced},
    EnvelopeLayer,
};
use genro_errors::{ErrorLayer, ErrorService};
use genro_metrics::{
    plumbing::{self as metrics, Measurement},
    MetricsCollector, MetricsLayer,
};
use genro_registry::{
    plumbing::{self as registry, Tracking},
    EnvelopeRegistry, RegistryLayer,
};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

/// A [`Layer`] that applies the envelope, registry, metrics and error layers as one service.
/// See the [crate documentation](crate).
#[derive(Clone)]
pub struct GenroLayer {
    parts: Arc<Parts>,
    errors: ErrorLayer,
}

#[derive(Clone)]
struct Parts {
    envelope: EnvelopeLayer,
    registry: RegistryLayer,
    metrics: MetricsLayer,
}

impl GenroLayer {
    /// The four parts with their defaults, tracking requests in `registry` and recording their
    /// metrics in `collector`.
    #[must_use]
    pub fn new(registry: &EnvelopeRegistry, collector: &MetricsCollector) -> Self {
        Self {
            parts: Arc::new(Parts {
                envelope: EnvelopeLayer::new(),
                registry: RegistryLayer::new(registry.clone()),
                metrics: MetricsLayer::new(collector),
            }),
            errors: ErrorLayer::new(),
        }
    }

    /// Uses `layer`'s configuration for the envelope part (id header, response id).
    #[must_use]
    pub fn envelope(mut self, layer: EnvelopeLayer) -> Self {
        Arc::make_mut(&mut self.parts).envelope = layer;
        self
    }

    /// Uses `layer`'s configuration for the error part (handlers, observers, traceback).
    #[must_use]
    pub fn errors(mut self, layer: ErrorLayer) -> Self {
        self.errors = layer;
        self
    }
}

impl fmt::Debug for GenroLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenroLayer")
            .field("envelope", &self.parts.envelope)
            .field("registry", &self.parts.registry)
            .field("metrics", &self.parts.metrics)
            .field("errors", &self.errors)
            .finish()
    }
}

impl<S> Layer<S> for GenroLayer {
    type Service = GenroService<ErrorService<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        GenroService {
            inner: self.errors.layer(inner),
            parts: self.parts.clone(),
        }
    }
}

/// The service made by [`GenroLayer`]: the envelope, registry and metrics parts around the
/// error layer's service.
pub struct GenroService<S> {
    inner: S,
    parts: Arc<Parts>,
}

genro_envelope::inner_service!(GenroService { parts });

/// What one request of [`GenroService`] carries from `call` to its response head; its measurement and
/// registry entry then go on to the end of the body.
///
/// Fields drop in order: the request leaves the in-flight gauge before the registry, so a drain
/// that sees the registry idle also sees the gauge at zero (as with the separate layers).
pub struct RequestState {
    measurement: Measurement,
    tracking: Tracking,
    /// Set when this service writes the response id (it made the envelope, and ids are written).
    write_id: Option<Arc<Parts>>,
}

impl fmt::Debug for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestState")
            .field("measurement", &self.measurement)
            .field("tracking", &self.tracking)
            .finish_non_exhaustive()
    }
}

impl ResponseWatch for RequestState {
    type Body = (Measurement, Tracking);

    #[inline]
    fn on_response<B>(mut self, response: &mut Response<B>) -> Self::Body {
        if let Some(parts) = self.write_id.take() {
            envelope::write_response_id(&parts.envelope, response, self.tracking.envelope());
        }
        self.measurement.respond(response);
        self.tracking.respond(response.status());
        (self.measurement, self.tracking)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GenroService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<Traced<S::Future>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let parts = &*self.parts;
        let attached = envelope::attach(&parts.envelope, &mut req);
        // Nothing at all in a build without task traces (see `genro_envelope::taskdump`).
        let point = TracePoint::new(&attached.envelope);
        let measurement = metrics::begin_enveloped(&parts.metrics, &req, &attached.envelope);
        let tracking = registry::begin(&parts.registry, &mut req, attached.envelope);
        let state = RequestState {
            measurement,
            tracking,
            write_id: attached.writes_response_id.then(|| self.parts.clone()),
        };
        // If `call` panics, `state` is dropped while unwinding: the request leaves the in-flight
        // gauge and the registry.
        ResponseFuture::new(point.wrap(self.inner.call(req)), state)
    }
}

/// Response future of [`GenroService`]: holds the request's state until the response is ready, then
/// hands it to the [`ResponseBody`].
pub type ResponseFuture<F> = WatchedFuture<F, RequestState>;

/// Response body of [`GenroService`]: counts its bytes, and keeps the request in the registry and in
/// flight until it ends, fails or is dropped. The measurement is dropped first, then the
/// registry entry.
pub type ResponseBody<B> = WatchedBody<B, (Measurement, Tracking)>;
