//! `[shutdown]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use crate::config::{resolver::Resolver, value::DURATION};

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSection {
    /// How long the server keeps accepting and serving, not ready, after a stop signal and
    /// before the drain (`drain_delay`). Behind a load balancer that polls
    /// readiness (a Kubernetes Service), set it to a little more than the time the balancer
    /// takes to see not-ready (5 s for Kubernetes' endpoint propagation): the connections it
    /// still sends meanwhile are served, not refused. A second signal ends it at once.
    pub drain_delay: Duration,
    /// Longest the drain waits for in-flight requests before aborting them (`drain_timeout`).
    pub drain_timeout: Duration,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self {
            drain_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ShutdownSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        Self {
            drain_delay: r.get("shutdown", "drain_delay", d.drain_delay, &DURATION),
            drain_timeout: r.get("shutdown", "drain_timeout", d.drain_timeout, &DURATION),
        }
    }
}
