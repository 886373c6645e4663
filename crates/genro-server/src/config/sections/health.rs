//! `[health]`: its struct, its defaults (`Default`), and `read`.

use crate::config::{
    resolver::Resolver,
    value::{BOOLEAN, ENDPOINT},
};

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthSection {
    /// Serve the health endpoints (`enabled`).
    pub enabled: bool,
    /// Liveness path (`live`).
    pub live: String,
    /// Readiness path (`ready`); it answers 503 while starting and draining.
    pub ready: String,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            enabled: true,
            live: "/health/live".into(),
            ready: "/health/ready".into(),
        }
    }
}

impl HealthSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "health";
        Self {
            enabled: r.get(s, "enabled", d.enabled, &BOOLEAN),
            live: r.get(s, "live", d.live, &ENDPOINT),
            ready: r.get(s, "ready", d.ready, &ENDPOINT),
        }
    }
}
