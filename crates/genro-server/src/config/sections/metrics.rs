//! `[metrics]`: its struct, its defaults (`Default`), and `read`.

use crate::config::{
    resolver::Resolver,
    value::{BOOLEAN, COUNT, ENDPOINT, OPTIONAL_PORT},
};

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSection {
    /// Serve the metrics (`enabled`).
    pub enabled: bool,
    /// Path of the metrics endpoint (`endpoint`).
    pub endpoint: String,
    /// Serve the endpoint on this port of its own instead of the main one (`export_port`).
    pub export_port: Option<u16>,
    /// Export process metrics: CPU, memory, file descriptors (`process`).
    pub process: bool,
    /// Most distinct route labels claimed at run time (`max_routes`).
    pub max_routes: usize,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: "/metrics".into(),
            export_port: None,
            process: true,
            max_routes: genro_metrics::DEFAULT_MAX_ROUTES,
        }
    }
}

impl MetricsSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "metrics";
        Self {
            enabled: r.get(s, "enabled", d.enabled, &BOOLEAN),
            endpoint: r.get(s, "endpoint", d.endpoint, &ENDPOINT),
            export_port: r.get(s, "export_port", d.export_port, &OPTIONAL_PORT),
            process: r.get(s, "process", d.process, &BOOLEAN),
            max_routes: r.get(s, "max_routes", d.max_routes, &COUNT),
        }
    }
}
