//! The ground floor of the server: where it is in its life ([`Lifecycle`]), the addresses it
//! listens on ([`ListenAddrs`]), and the state every other part shares, which handlers reach as a
//! [`ServerContext`]. This file imports nothing of the server above it.

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use arc_swap::ArcSwap;
use genro_envelope::RequestEnvelope;
use genro_metrics::MetricsCollector;
use genro_registry::EnvelopeRegistry;
use tokio::sync::{watch, Notify};

use crate::{
    config::Config,
    executor::{Executors, ThreadPool},
};

/// Where the server is in its life. Ordered: each phase comes after the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lifecycle {
    Starting,
    Serving,
    Draining,
    Aborting,
    Stopped,
}

/// The addresses the server listens on, once bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenAddrs {
    /// The main listener.
    pub main: Option<SocketAddr>,
    /// The metrics export listener (`[metrics] export_port`).
    pub export: Option<SocketAddr>,
    /// The debug console (`[debug] debug_port`, when `enabled`).
    pub debug: Option<SocketAddr>,
}

/// What a handler can reach of the server: its configuration, registry and metrics, and the
/// shutdown signal. Every request of the application carries it through its envelope (at the
/// cost of a reference count, not a request extension of its own); with axum, take it as an
/// extractor, and elsewhere read it with [`ServerContext::from_extensions`].
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
    pub(crate) lifecycle: watch::Sender<Lifecycle>,
    pub(crate) bound: watch::Sender<ListenAddrs>,
    pub(crate) executors: Executors,
    /// Stops asked for through a handle (each one a permit): the first begins the stop, a
    /// second ends the `drain_delay`.
    pub(crate) stops: Notify,
    /// Upgrades asked for through a handle.
    pub(crate) upgrades: Notify,
}

impl Shared {
    /// Starts the drain, once: later calls change nothing.
    pub(crate) fn begin_drain(&self) {
        self.ready.store(false, Ordering::Release);
        self.lifecycle.send_if_modified(|l| {
            let first = *l < Lifecycle::Draining;
            if first {
                *l = Lifecycle::Draining;
            }
            first
        });
    }
}

impl ServerContext {
    /// The state of a server about to start with `config`.
    pub(crate) fn new(config: Config) -> Self {
        let metrics = MetricsCollector::with_max_routes(config.metrics.max_routes);
        let threads = ThreadPool::new(config.executors.pool_threads(), config.executors.queue);
        Self {
            shared: Arc::new(Shared {
                config: ArcSwap::from_pointee(config),
                registry: EnvelopeRegistry::new(),
                metrics,
                ready: AtomicBool::new(false),
                lifecycle: watch::channel(Lifecycle::Starting).0,
                bound: watch::channel(ListenAddrs::default()).0,
                executors: Executors::new(threads),
                stops: Notify::new(),
                upgrades: Notify::new(),
            }),
        }
    }

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
    pub fn executors(&self) -> &Executors {
        &self.shared.executors
    }

    /// The addresses the server listens on (known once it has bound them, before the
    /// `on_startup` hooks run).
    #[must_use]
    pub fn bound(&self) -> ListenAddrs {
        *self.shared.bound.borrow()
    }

    /// Whether the server reports itself ready (false while starting and while draining).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// The context of the server a request is served by, read from the request's extensions (or
    /// those of its `http::request::Parts`): through its envelope, or an extension a test or a
    /// middleware put there. `None` for a request not served by an `AsgiServer`.
    ///
    /// ```
    /// use genro_server::ServerContext;
    ///
    /// fn in_flight<B>(req: &http::Request<B>) -> Option<usize> {
    ///     Some(ServerContext::from_extensions(req.extensions())?.registry().len())
    /// }
    /// assert_eq!(in_flight(&http::Request::new(())), None);
    /// ```
    #[must_use]
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        if let Some(context) = extensions.get::<Self>() {
            return Some(context.clone());
        }
        RequestEnvelope::from_extensions(extensions)?
            .shared::<Self>()
            .cloned()
    }

    /// Resolves when the server begins to shut down: streaming and WebSocket handlers await it
    /// to finish their work and end cleanly.
    pub async fn shutdown_signal(&self) {
        let mut rx = self.shared.lifecycle.subscribe();
        // The sender lives as long as `Shared`, which this context holds.
        let _ = rx.wait_for(|l| *l >= Lifecycle::Draining).await;
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
    type Rejection = (http::StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions).ok_or((
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "ServerContext missing: the app is not served by genro_server::AsgiServer",
        ))
    }
}
