//! What every connection and session of one console shares: the settings, the registry, the
//! holds, the login limiter, the connections not logged in, the session count and the metrics,
//! and the stop signal.

use std::sync::atomic::{AtomicUsize, Ordering};

use genro_registry::EnvelopeRegistry;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};
use tokio::sync::watch;

use crate::{auth::Limiter, config::DebugConfig, hold::Holds, pending::Pending};

/// Sets the server's log filter: given a filter such as `info,my_app=debug`, applies it or says
/// why not.
pub type LogFilter = std::sync::Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    pub(crate) outcome: &'static str,
}

/// The console's metrics.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metrics {
    pub(crate) sessions: Gauge,
    pub(crate) logins: Family<Outcome, Counter>,
    pub(crate) refused_connections: Counter,
}

/// What every connection and session of a console shares.
pub(crate) struct State {
    pub(crate) config: DebugConfig,
    pub(crate) registry: EnvelopeRegistry,
    pub(crate) holds: Option<Holds>,
    pub(crate) log_filter: Option<LogFilter>,
    pub(crate) limiter: Limiter,
    /// Connections that have not logged in.
    pub(crate) pending: std::sync::Arc<Pending>,
    /// Sessions logged in.
    pub(crate) sessions: AtomicUsize,
    pub(crate) metrics: Metrics,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Resolves once the console is told to stop.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not across an await.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// A place among the sessions logged in, given back when dropped.
pub(crate) struct SessionSlot<'a>(&'a State);

impl State {
    pub(crate) fn enter(&self) -> Option<SessionSlot<'_>> {
        let max = self.config.max_sessions;
        self.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.metrics.sessions.inc();
        Some(SessionSlot(self))
    }
}

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.sessions.dec();
    }
}
