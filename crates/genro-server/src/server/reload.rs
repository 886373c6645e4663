//! Reload (SIGHUP): the configuration file read again, and what can change live applied.

use std::sync::Arc;

use super::startup::Started;
use crate::{config::Config, logging::Logging, state::Shared};

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
    let mut restart = Vec::new();
    if new.cors.enabled != old.cors.enabled {
        restart.push("cors.enabled");
    }
    if new.server != old.server {
        restart.push("[server] (host, port, workers, debug)");
    }
    if new.limits != old.limits {
        restart.push("[limits]");
    }
    match (&started.tls, new.ssl.enabled) {
        // The files are read again even when their paths did not change: renewed in place.
        (Some(tls), true) => match tls.reload(&new.ssl) {
            Ok(()) => applied.push("ssl certificates"),
            Err(why) => {
                tracing::error!(%why, "SIGHUP: certificates not reloaded; the current ones stay")
            }
        },
        (None, false) => {}
        _ => restart.push("[ssl] enabled"),
    }
    if new.metrics != old.metrics {
        restart.push("[metrics]");
    }
    if !restart.is_empty() {
        tracing::warn!(changes = ?restart, "SIGHUP: these changes need a restart and were not applied");
    }
    tracing::info!(applied = ?applied, "configuration reloaded");
    shared.config.store(Arc::new(new));
}
