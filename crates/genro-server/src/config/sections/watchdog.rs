//! `[watchdog]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use crate::config::{
    resolver::Resolver,
    value::{humanize, BOOLEAN, DURATION},
};

/// `[watchdog]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchdogSection {
    /// Run the watchdog (`enabled`).
    pub enabled: bool,
    /// Time between scans (`interval`).
    pub interval: Duration,
    /// Age of a request reported at warning level (`timeout`).
    pub timeout: Duration,
    /// Age of a request reported as critical and notified (`critical`).
    pub critical: Duration,
}

impl Default for WatchdogSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            critical: Duration::from_secs(300),
        }
    }
}

impl WatchdogSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "watchdog";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (interval, interval_source) = r.read(s, "interval", d.interval, &DURATION);
        let timeout = r.get(s, "timeout", d.timeout, &DURATION);
        let (critical, critical_source) = r.read(s, "critical", d.critical, &DURATION);
        if enabled {
            if interval.is_zero() {
                r.problem(s, "interval", interval_source, "must be more than zero");
            }
            if critical <= timeout {
                r.problem(
                    s,
                    "critical",
                    critical_source,
                    format!(
                        "{} must be above watchdog.timeout ({})",
                        humanize(critical),
                        humanize(timeout)
                    ),
                );
            }
        }
        Self {
            enabled,
            interval,
            timeout,
            critical,
        }
    }

    /// The watchdog's thresholds.
    pub(crate) fn thresholds(&self) -> genro_watchdog::WatchdogConfig {
        genro_watchdog::WatchdogConfig {
            interval: self.interval,
            timeout: self.timeout,
            critical: self.critical,
        }
    }
}
