//! Request envelope for tower services: one id and one record per request, shared by every layer.
//!
//! `genro-envelope` is the base of genro-asgi. [`EnvelopeLayer`] gives every request an
//! `Arc<`[`RequestEnvelope`]`>` holding:
//!
//! - an **internal id**, a UUIDv7 whose 74 random bits come from fastrand's thread-local wyrand
//!   generator (no syscall, no global lock). wyrand is fast and well distributed but it is not
//!   a cryptographic generator: ids are unique, time-ordered correlation handles, never secrets;
//! - the **external id** from `x-request-id` (configurable), kept only when it matches
//!   `^[A-Za-z0-9._:-]{1,128}$`. Anything else is dropped, counted and never echoed or logged
//!   verbatim, so a client cannot smuggle CRLF, escapes or 10 KB of junk into logs and headers;
//! - method, URI, version, client address, wall-clock and monotonic start times;
//! - a route slot, a phase, and **annotations** that handlers write and the watchdog, the error
//!   layer and the debug console read. Annotations are bounded in number, key length and value
//!   length ([`MAX_ANNOTATIONS`], [`MAX_ANNOTATION_KEY_LEN`], [`MAX_ANNOTATION_VALUE_LEN`]).
//!
//! The envelope goes in the request extensions; the ids are recorded on the current tracing span;
//! the id header is set on the response. Short ids ([`RequestEnvelope::short_id`]) are the error
//! ids that users quote.
//!
//! # Example
//!
//! ```
//! use genro_envelope::{EnvelopeLayer, RequestEnvelope};
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let svc = ServiceBuilder::new()
//!     .layer(EnvelopeLayer::new())
//!     .service(service_fn(|req: Request<String>| async move {
//!         let envelope = RequestEnvelope::from_request(&req).expect("layer is installed");
//!         envelope.annotate("tenant", "acme");
//!         Ok::<_, std::convert::Infallible>(Response::new(envelope.short_id().to_owned()))
//!     }));
//!
//! let req = Request::get("/").header("x-request-id", "order-1234").body(String::new())?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.headers()["x-request-id"], "order-1234");
//! assert_eq!(res.body().len(), 8);
//! # Ok(())
//! # }
//! ```
//!
//! With axum, take the `Envelope` extractor (feature `axum`, on by default) as a handler
//! argument.
//!
//! # Tracing
//!
//! The layer records `request_id` and `external_id` on the *current* span. A span only accepts
//! fields it declared, so declare them empty where the span is made, for example with tower-http:
//! `TraceLayer::new_for_http().make_span_with(|_: &_| tracing::info_span!("request",
//! request_id = tracing::field::Empty, external_id = tracing::field::Empty))`, placed outside
//! this layer. A span that declares `trace_id` gets the request's W3C trace id too.
//!
//! # W3C Trace Context
//!
//! The layer reads a request's `traceparent` when it is valid per the spec ([`Traceparent`];
//! refusals are counted in `traceparent_invalid_total`) and keeps its `tracestate`; with
//! [`EnvelopeLayer::start_traces`], a request without one starts a trace. The envelope's
//! [`TraceContext`] holds the trace id, the request's own span id, the caller's span, and the
//! `traceparent` for calls made on the request's behalf
//! ([`TraceContext::child_traceparent`]).
//!
//! # Metrics
//!
//! [`EnvelopeLayer::register_metrics`] adds `request_id_invalid_total` to a prometheus-client
//! `Registry`. prometheus-client is the official Rust client of the Prometheus project and
//! writes OpenMetrics text that `promtool` accepts; every genro crate registers into the same
//! `Registry`.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `axum`  | yes     | the `Envelope` extractor; the route template from axum's `MatchedPath`; the client address from `ConnectInfo<SocketAddr>` (which needs axum's `tokio` feature, so it brings tokio's `net` and hyper's server in; turn the default off under tonic or plain hyper) |
//! | `opentelemetry` | no | `otel::join_trace`: a request's span joins the client's W3C trace in a tracing-opentelemetry subscriber, and the envelope takes the exported ids |
//! | `taskdump` | no | what a stuck request is waiting on ([`taskdump`]), in a build with `--cfg tokio_unstable` |
//!
//! tonic and plain hyper users can turn the default off (`default-features = false`); nothing
//! else changes. Services that fuse layers, and the sibling genro crates, use the building
//! blocks in [`plumbing`].
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod cancel;
mod client;
mod envelope;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod id;
mod layer;
#[cfg(feature = "opentelemetry")]
pub mod otel;
mod phase;
pub mod plumbing;
mod service;
mod settings;
mod short_id;
mod signal;
pub mod taskdump;
mod trace_context;
#[cfg(genro_taskdump)]
mod trace_hook;
mod truncate;
mod watch;

pub use cancel::{CancelFuture, CancelLayer, CancelService, Cancelled};
pub use client::ClientAddr;
pub use envelope::{
    Annotated, InvalidExternalId, RequestEnvelope, MAX_ANNOTATIONS, MAX_ANNOTATION_KEY_LEN,
    MAX_ANNOTATION_VALUE_LEN,
};
#[cfg(feature = "axum")]
pub use extract::{Envelope, MissingEnvelope};
pub use future::ResponseFuture;
pub use id::{is_valid_external_id, MAX_EXTERNAL_ID_LEN};
pub use layer::EnvelopeLayer;
pub use phase::Phase;
pub use service::EnvelopeService;
pub use settings::{ResponseId, DEFAULT_HEADER};
pub use short_id::ShortId;
pub use trace_context::{
    InvalidTraceparent, SpanId, TraceContext, TraceId, Traceparent, MAX_TRACESTATE_LEN,
    TRACEPARENT, TRACESTATE,
};
