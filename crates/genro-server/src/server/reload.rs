//! Reload (SIGHUP): the configuration file read again, and what can change live applied.

use std::{collections::BTreeMap, sync::Arc};

use super::startup::Started;
use crate::{config::Config, logging::Logging, state::Shared};

/// The keys a reload applies while the server runs. A change to any other key of genro's
/// sections needs a restart, and the reload says so; free-form sections (`[application]`) are
/// read by handlers through [`ServerContext::config`](crate::ServerContext::config), so their
/// new values are seen at once.
pub(crate) const LIVE: &[&str] = &[
    "logging.level",
    "watchdog.interval",
    "watchdog.timeout",
    "watchdog.critical",
    "errors.show_traceback",
    "cors.allow_origins",
    "ssl.certfile",
    "ssl.keyfile",
];

/// Re-reads the configuration file and applies what can change live: the log level, the
/// watchdog's thresholds, `show_traceback`, the CORS origins and the TLS certificates. A broken
/// file is refused and the running configuration stays; changes that need a restart are logged
/// and not applied.
pub(crate) fn reload(shared: &Shared, started: &Started, logging: Option<&Logging>) {
    let old = shared.config.load_full();
    let Some(path) = old.path() else {
        tracing::warn!("SIGHUP: the configuration was not read from a file; nothing to reload");
        return;
    };
    let new = match Config::from_path(path) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "SIGHUP: new configuration refused; the running one stays");
            return;
        }
    };
    let mut applied = Vec::new();
    if new.logging.level != old.logging.level {
        match logging.map(|l| l.set_level(&new.logging.level)) {
            Some(Ok(())) => applied.push("logging.level"),
            Some(Err(why)) => tracing::warn!(%why, "logging.level not changed"),
            None => tracing::warn!(
                "logging.level not changed: the application's own subscriber is in use"
            ),
        }
    }
    if new.errors.show_traceback != old.errors.show_traceback {
        started.traceback.set(new.errors.show_traceback);
        applied.push("errors.show_traceback");
    }
    if new.watchdog != old.watchdog {
        if let Some(watchdog) = &started.watchdog {
            match watchdog.set_config(new.watchdog.thresholds()) {
                Ok(()) => applied.push("watchdog"),
                Err(e) => tracing::warn!(error = %e, "watchdog thresholds not changed"),
            }
        }
    }
    if new.cors.allow_origins != old.cors.allow_origins {
        started
            .cors_origins
            .store(Arc::new(new.cors.allow_origins.clone()));
        applied.push("cors.allow_origins");
    }
    let restart = needs_restart(&old, &new);
    // The files are read again even when their paths did not change: renewed in place.
    if let (Some(tls), true) = (&started.tls, new.ssl.enabled) {
        match tls.reload(&new.ssl) {
            Ok(()) => applied.push("ssl certificates"),
            Err(why) => {
                tracing::error!(%why, "SIGHUP: certificates not reloaded; the current ones stay")
            }
        }
    }
    if !restart.is_empty() {
        tracing::warn!(changes = ?restart, "SIGHUP: these changes need a restart and were not applied");
    }
    tracing::info!(applied = ?applied, "configuration reloaded");
    shared.config.store(Arc::new(new));
}

/// genro's keys, other than the live ones, whose value differs between `old` and `new`, as
/// `section.key`.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let values = |config: &Config| -> BTreeMap<String, String> {
        config
            .effective()
            .iter()
            .filter(|e| crate::config::is_genro_section(&e.section))
            .map(|e| (format!("{}.{}", e.section, e.key), e.value.clone()))
            .collect()
    };
    let (old, new) = (values(old), values(new));
    new.iter()
        .filter(|(key, value)| old.get(*key) != Some(value) && !LIVE.contains(&key.as_str()))
        .map(|(key, _)| key.clone())
        .collect()
}
