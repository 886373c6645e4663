//! Reload (SIGHUP): the configuration file read again, off the signal loop, and what can
//! change live applied.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use genro_envelope::taskdump::TaskDumper;
use rustls::sign::CertifiedKey;
use tokio::sync::oneshot;

use super::startup::Parts;
use crate::{
    config::{Config, ConfigError},
    logging::Logging,
    state::Shared,
    tls,
};

/// The keys a reload applies while the server runs. A change to any other key of genro's
/// sections needs a restart, and the reload says so; free-form sections (`[application]`) are
/// read by handlers through [`ServerContext::config`](crate::ServerContext::config), so their
/// new values are seen at once.
pub(crate) const LIVE: &[&str] = &[
    "logging.level",
    "watchdog.interval",
    "watchdog.timeout",
    "watchdog.critical",
    "taskdump.min_interval",
    "taskdump.timeout",
    "taskdump.max_bytes",
    "errors.show_traceback",
    "cors.allow_origins",
    "debug.allowed_ips",
    "ssl.certfile",
    "ssl.keyfile",
];

/// What a reload read from disk: the configuration file and, with TLS on, the certificates it
/// names. Read on a thread of its own, so that a slow or hanging file (a large one, a FIFO, a
/// dead network mount) holds neither the signal loop nor the exit.
pub(crate) struct Reloaded {
    path: PathBuf,
    config: Result<Config, ConfigError>,
    certificates: Option<Result<CertifiedKey, String>>,
}

/// Starts reading the configuration file again; the result arrives on the receiver. `None` when
/// the configuration was not read from a file, or no thread can be started.
pub(crate) fn reread(shared: &Shared, tls: bool) -> Option<oneshot::Receiver<Reloaded>> {
    let Some(path) = shared.config.load().path().map(Path::to_owned) else {
        tracing::warn!("SIGHUP: the configuration was not read from a file; nothing to reload");
        return None;
    };
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("genro-reload".into())
        .spawn(move || {
            let config = Config::from_path(&path);
            // The files are read again even when their paths did not change: renewed in place.
            let certificates = match &config {
                Ok(new) if tls && new.ssl.enabled => Some(tls::load(&new.ssl)),
                _ => None,
            };
            let _ = tx.send(Reloaded {
                path,
                config,
                certificates,
            });
        });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: cannot start reading the configuration");
            None
        }
    }
}

/// Applies what a reload read: the log level, the watchdog's thresholds, the traces' limits,
/// `show_traceback`, the CORS origins and the TLS certificates. A broken file is refused and the running
/// configuration stays; changes that need a restart are logged and not applied.
pub(crate) fn apply(
    shared: &Shared,
    started: &Parts,
    logging: Option<&Logging>,
    reloaded: Reloaded,
) {
    let new = match reloaded.config {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(path = %reloaded.path.display(), error = %e, "SIGHUP: new configuration refused; the running one stays");
            return;
        }
    };
    let old = shared.config.load_full();
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
    if new.taskdump != old.taskdump {
        TaskDumper::global().set_limits(new.taskdump.limits());
        applied.push("taskdump");
    }
    if new.cors.allow_origins != old.cors.allow_origins {
        started
            .cors_origins
            .store(Arc::new(new.cors.allow_origins.clone()));
        applied.push("cors.allow_origins");
    }
    if new.debug.allowed_ips != old.debug.allowed_ips {
        if let Some(debug) = &started.debug {
            debug.set_allowed_ips(new.debug.allowed_ips.clone());
            applied.push("debug.allowed_ips");
        }
    }
    let restart = needs_restart(&old, &new);
    if let (Some(tls), Some(certificates)) = (&started.tls, reloaded.certificates) {
        match certificates {
            Ok(certified) => {
                tls.install(certified);
                applied.push("ssl certificates");
            }
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
