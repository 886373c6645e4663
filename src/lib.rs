//! genro-asgi: a production request lifecycle for tower services.
//!
//! This umbrella crate re-exports the genro crates, each behind a feature of its own name (all on
//! by default), so that `use genro_asgi::EnvelopeLayer;` works as well as
//! `use genro_envelope::EnvelopeLayer;`. Each crate is also reachable as a module
//! (`genro_asgi::envelope`, `genro_asgi::registry`, `genro_asgi::metrics`, `genro_asgi::errors`,
//! `genro_asgi::notify`, `genro_asgi::stack`, `genro_asgi::watchdog`, `genro_asgi::debug`).
//!
//! | feature | crate | what it gives |
//! |---|---|---|
//! | `genro-envelope` | [`genro_envelope`] | [`RequestEnvelope`], [`EnvelopeLayer`], the axum extractor |
//! | `genro-registry` | [`genro_registry`] | [`EnvelopeRegistry`], [`RegistryLayer`] |
//! | `genro-metrics` | [`genro_metrics`] | [`MetricsCollector`], [`MetricsLayer`], [`MetricsEndpoint`] |
//! | `genro-errors` | [`genro_errors`] | [`ErrorLayer`], [`Problem`], [`Error`] |
//! | `genro-notify` | [`genro_notify`] | [`Notifier`], [`Notifiers`], [`Notification`] |
//! | `genro-stack` | [`genro_stack`] | [`GenroLayer`]: envelope, registry, metrics and errors as one layer |
//! | `genro-debug` | [`genro_debug`] | [`RemoteDebugServer`], [`Holds`]: the remote debug console and hold-on-error |
//! | `genro-server` | [`genro_server`] | [`AsgiServer`], [`AsgiApplication`], [`Config`], [`ServerContext`] |
//! | `genro-watchdog` | [`genro_watchdog`] | [`Watchdog`], [`WatchdogConfig`] |
//! | `webhook` (default) | — | [`WebhookNotifier`] |
//! | `axum` (default) | — | the envelope extractor, route templates from `MatchedPath`, `IntoResponse` for [`Error`] |
//! | `tonic` | — | the error layer under tonic (`RenderedBody` for tonic's body) |
//! | `taskdump` | — | what a stuck request is waiting on, from tokio's task tracing ([`taskdump`]; needs `RUSTFLAGS="--cfg tokio_unstable"`) |
//!
//! The seed's typical use:
//!
//! ```no_run
//! use genro_asgi::AsgiServer;
//!
//! fn main() -> Result<(), genro_asgi::Error> {
//!     let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
//!     let server = AsgiServer::from_config_path("server.ini")?;
//!     server.run(app)
//! }
//! ```
//!
//! See the README for the crate map and a quick start.

#[cfg(feature = "genro-envelope")]
#[doc(inline)]
pub use genro_envelope::{
    self as envelope, taskdump, CancelLayer, ClientAddr, EnvelopeLayer, Phase, RequestEnvelope,
    ResponseId,
};

#[cfg(all(feature = "genro-envelope", feature = "axum"))]
#[doc(inline)]
pub use genro_envelope::Envelope;

#[cfg(feature = "genro-registry")]
#[doc(inline)]
pub use genro_registry::{
    self as registry, EnvelopeRegistry, InFlight, InFlightToken, RegistryLayer,
};

#[cfg(feature = "genro-notify")]
#[doc(inline)]
pub use genro_notify::{self as notify, Notification, Notifier, Notifiers, RequestInfo, Severity};

#[cfg(feature = "webhook")]
#[doc(inline)]
pub use genro_notify::WebhookNotifier;

#[cfg(feature = "genro-watchdog")]
#[doc(inline)]
pub use genro_watchdog::{self as watchdog, Watchdog, WatchdogConfig, WatchdogHandle};

#[cfg(feature = "genro-metrics")]
#[doc(inline)]
pub use genro_metrics::{self as metrics, MetricsCollector, MetricsEndpoint, MetricsLayer};

#[cfg(feature = "genro-errors")]
#[doc(inline)]
pub use genro_errors::{
    self as errors, ErrorLayer, ErrorReport, Observer, Problem, RenderedBody, TracebackSwitch,
};

#[cfg(feature = "genro-stack")]
#[doc(inline)]
pub use genro_stack::{self as stack, GenroLayer};

#[cfg(feature = "genro-debug")]
#[doc(inline)]
pub use genro_debug::{self as debug, Holds, RemoteDebugServer};

#[cfg(feature = "genro-server")]
#[doc(inline)]
pub use genro_server::{
    self as server, AsgiApplication, AsgiServer, Config, ServerContext, ServerHandle,
};

/// The error a genro-asgi handler returns, and the error of the server's functions: one type,
/// so that `fn main() -> Result<(), genro_asgi::Error>` works with `?` on both.
#[cfg(feature = "genro-errors")]
pub type Error = genro_errors::Error;

/// The README's examples, compiled as doctests so that they keep working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
