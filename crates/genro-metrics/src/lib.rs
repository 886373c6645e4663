//! Prometheus metrics for tower services, with bounded labels, and a `/metrics` service.
//!
//! - [`MetricsCollector`] holds a prometheus-client `Registry`: the HTTP metrics, the metrics of
//!   the other genro crates (each registers itself: `register_metrics(&mut collector.registry())`)
//!   and your own. [`MetricsCollector::render`] gives OpenMetrics text;
//!   [`MetricsCollector::service`] serves it, or Prometheus text, by content negotiation.
//! - [`MetricsLayer`] records `http_requests_total{method,route,status}`,
//!   `http_request_duration_seconds{method,route}` (to the end of the body),
//!   `http_response_size_bytes{method,route}` and `http_requests_in_flight`.
//!
//! Every label is bounded: methods from a fixed set plus `other`, routes from templates
//! (`MatchedPath`, tonic method paths) plus `unmatched`, and a cap on distinct routes. Ten
//! thousand requests for random paths add no series. Label sets are built once per route and
//! reused: the request path does not allocate labels.
//!
//! prometheus-client is the Prometheus project's own Rust client; its output passes
//! `promtool check metrics`. The two request histograms are this crate's own metric type,
//! encoded through prometheus-client's `EncodeMetric` trait: prometheus-client's `Histogram`
//! takes a mutex on every observation, and the request path makes two observations per request.
//! Ours updates one atomic bucket and an atomic sum, and costs about a third as many instructions.
//!
//! With the `axum` feature, the per-route metric handles are found when the request arrives,
//! in a lock-free table of write-once slots keyed by the route template's address (an entry
//! holds the template, so the address cannot be reused while it is cached).
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
//!     .route_service("/metrics", collector.service());
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
//! | `axum`  | no      | route labels from axum's `MatchedPath` |
//!
//! # Minimum supported Rust version
//!
//! 1.88.

mod collector;
mod histogram;
mod labels;
mod layer;
mod process;

pub use collector::{
    MetricsCollector, MetricsService, DEFAULT_MAX_ROUTES, OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
};
pub use labels::{OVERFLOW, UNMATCHED};
pub use layer::{Measurement, Metrics, MetricsLayer, ResponseBody, ResponseFuture};
