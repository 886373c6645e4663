//! One place for every error and panic of a tower service: a short error id, handlers keyed by
//! error type, `application/problem+json` and gRPC status.
//!
//! [`ErrorLayer`] catches what the inner service gets wrong — an error it returns, a panic in
//! `call` or in its future, an [`Error`] a handler returns — and turns each into one consistent
//! response, one structured log event and one increment of `errors_total{kind,type}`. The error
//! id is the request envelope's short id, so the id a user quotes from an error page is the one
//! in the log line, the `x-error-id` header and the debug console.
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router};
//! use genro_errors::{Error, ErrorLayer, Problem};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! #[derive(Debug)]
//! struct NotFound(u32);
//! impl std::fmt::Display for NotFound {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "no order {}", self.0)
//!     }
//! }
//! impl std::error::Error for NotFound {}
//!
//! async fn order() -> Result<String, Error> {
//!     Err(NotFound(7))?
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new().route("/orders/7", get(order)).layer(
//!     ErrorLayer::new().handler("not_found", |e: &NotFound, _envelope| {
//!         Problem::new(StatusCode::NOT_FOUND).detail(e.to_string())
//!     }),
//! );
//! let res = app.oneshot(Request::get("/orders/7").body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! assert!(res.headers().contains_key("x-error-id"));
//! # }
//! ```
//!
//! # What the client sees
//!
//! `application/problem+json` (RFC 9457) with `title`, `status` and `error_id`, plus `type` when
//! it is not `about:blank`. `detail` appears for 4xx problems whose handler gave one; for 5xx,
//! `detail` and `traceback` appear only with [`ErrorLayer::show_traceback`]. Browsers asking for
//! `text/html` get a small page, `text/plain` clients get text, and gRPC clients get a
//! trailers-only response with the mapped `grpc-status`.
//!
//! # The framework's own errors
//!
//! With [`ErrorLayer::framework_errors`] on, the errors the framework answers by itself (the
//! router's 404 and 405, axum's extractor rejections, a bodiless status a handler returned) take
//! the same path. Only a response with no body or one of axum's rejection texts
//! ([`REJECTIONS`], at most [`MAX_REJECTION`] bytes) is rewritten; the application's own bodies
//! never are.
//!
//! # Panics in the log
//!
//! [`install_panic_hook`] makes each panic one tracing event in the log's format: the layer's
//! "request failed" event for a panic it catches (with the location and backtrace), an event of
//! its own for any other ([`log_panic`], [`PanicLogged`] for a hook of your own).
//!
//! # Telling someone, holding the response
//!
//! Critical errors (panics and unclaimed 5xx by default; see [`ErrorLayer::critical_when`]) go
//! to the layer's notifiers as `critical_error` notifications: the same genro-notify path, and
//! the same request shape, as the watchdog's stuck-request reports, so one webhook serves both.
//! Observers ([`Observer`]) see every error before its response leaves and may hold it for a
//! bounded time: the debug console's hold-on-error is one.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `axum`  | yes     | `IntoResponse` for [`Error`], so handlers return `Result<T, genro_errors::Error>`; [`RenderedBody`] for axum's body |
//! | `tonic` | no      | [`RenderedBody`] for tonic's body, so the layer fits `tonic::transport::Server::layer` |
//!
//! Without `axum`, a handler's `Error` cannot travel through `IntoResponse`; tonic and plain
//! hyper users turn the default off and lose nothing they use.
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod backtrace;
mod body;
mod error;
mod framework;
mod future;
mod handle;
mod layer;
mod observer;
mod panic;
mod problem;
mod report;
mod service;
mod throttle;

pub use backtrace::{short_backtrace, ShortBacktrace};
pub use body::RenderedBody;
pub use error::{BoxError, Error};
pub use framework::{MAX_REJECTION, REJECTIONS};
pub use future::ResponseFuture;
pub use layer::{ErrorLayer, TracebackSwitch};
pub use observer::{ObserveFuture, Observer};
pub use panic::{
    install_panic_hook, log_panic, panic_message, remember_panic_backtrace, PanicLogged,
};
pub use problem::{Problem, MAX_GRPC_MESSAGE};
pub use report::{ErrorKind, ErrorReport, CANCELLED, ERROR_PATH_PANIC, OTHER, PANIC};
pub use service::ErrorService;
