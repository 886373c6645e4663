//! Prometheus metrics for tower services, with bounded labels, and a `/metrics` service.
//!
//! - [`MetricsCollector`] holds a prometheus-client `Registry`: the HTTP metrics, the metrics of
//!   the other genro crates (each registers itself: `register_metrics(&mut collector.registry())`)
//!   and your own. [`MetricsCollector::render`] gives OpenMetrics text;
//!   [`MetricsCollector::endpoint`] serves it, or Prometheus text, by content negotiation, off
//!   the async runtime and with concurrent scrapes bounded ([`MetricsEndpoint`]).
//! - [`MetricsLayer`] records `http_requests_total{method,route,status}`,
//!   `http_request_duration_seconds{method,route}` (to the end of the body),
//!   `http_response_size_bytes{method,route}` and `http_requests_in_flight`.
//!
//! Every label is bounded, and only the server's own routing makes a route label: methods from
//! a fixed set plus `other`, routes from templates (`MatchedPath`, tonic methods the server
//! proved it implements) plus `unmatched`, and a cap on distinct routes claimed at run time. Ten
//! thousand requests for random paths, gRPC-typed or not, add no series. Label sets are built
//! once per route and reused: the request path does not allocate labels.
//!
//! prometheus-client is the Prometheus project's own Rust client; its output passes
//! `promtool check metrics`. The two request histograms are this crate's own metric type,
//! encoded through prometheus-client's `EncodeMetric` trait: prometheus-client's `Histogram`
//! takes a mutex on every observation, and the request path makes two observations per request.
//! Ours updates one atomic bucket and an atomic sum; `benches/callgrind.sh` in the genro-asgi
//! repository measures both (the `histogram-*` rows).
//!
//! The per-route metric handles sit in one map per method, keyed by the route template, behind
//! a read-mostly lock.
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router};
//! use genro_metrics::{MetricsCollector, MetricsLayer};
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let collector = MetricsCollector::new();
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .layer(MetricsLayer::new(&collector))
//!     .route_service("/metrics", collector.endpoint());
//!
//! let res = app.clone().oneshot(Request::get("/users/7").body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! res.into_body().collect().await.unwrap();
//! let text = collector.render();
//! assert!(text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#));
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `axum`  | yes     | route labels from axum's `MatchedPath` |
//!
//! tonic and plain hyper users can turn the default off (`default-features = false`). Without
//! it, or with the layer placed around an axum router instead of inside it, routes cannot be
//! known; the layer then logs one warning the first time a successful response is labelled
//! `unmatched`, rather than quietly mislabelling every route.
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod collector;
mod endpoint;
mod histogram;
mod labels;
mod layer;
mod process;

pub use collector::{MetricsCollector, DEFAULT_MAX_ROUTES};
pub use endpoint::{
    EndpointFuture, MetricsEndpoint, MAX_WAITING_SCRAPES, OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
};
pub use labels::{OVERFLOW, UNMATCHED};
pub use layer::{MetricsLayer, MetricsService, ResponseBody, ResponseFuture};

/// Building blocks for services that do the metrics layer's work together with other work in
/// one future (as genro-asgi's `GenroLayer` does). A plain stack uses [`MetricsLayer`].
pub mod plumbing {
    use std::sync::Arc;

    use genro_envelope::RequestEnvelope;
    use http::Request;

    use crate::MetricsLayer;
    pub use crate::{histogram::Histogram, layer::Measurement};

    /// Starts measuring `req`, as `layer`'s service does; see [`Measurement`].
    #[must_use]
    pub fn begin<B>(layer: &MetricsLayer, req: &Request<B>) -> Measurement {
        layer.begin(req)
    }

    /// [`begin`] for a request whose envelope the caller holds: the envelope's route template is
    /// used rather than looked up again in the request extensions.
    #[must_use]
    pub fn begin_enveloped<B>(
        layer: &MetricsLayer,
        req: &Request<B>,
        envelope: &Arc<RequestEnvelope>,
    ) -> Measurement {
        layer.begin_enveloped(req, envelope)
    }
}
