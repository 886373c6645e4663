//! Serving until the end: the signals (a stop, SIGHUP's reload, SIGUSR2's upgrade) and the
//! handle's requests, answered while the accept loops serve.

use std::future::Future;

#[cfg(unix)]
use super::upgrade;
use super::{
    listen::Listeners,
    reload,
    signals::{Signal, Signals},
    startup::Parts,
    systemd::Systemd,
};
use crate::{config::Config, logging::Logging, state::Shared};

/// How the serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A stop signal or a handle's shutdown.
    Asked,
    /// A new process took the sockets over.
    Upgraded,
}

/// What an upgrade in progress will answer.
type Upgrading<'a> = std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send + 'a>>;

/// What starts an upgrade, when this platform and the sockets allow one.
#[cfg(unix)]
pub(crate) type PlatformUpgrader = upgrade::Upgrader;
#[cfg(not(unix))]
pub(crate) type PlatformUpgrader = std::convert::Infallible;

#[cfg(unix)]
pub(crate) fn prepare_upgrade(
    config: &Config,
    listeners: &Listeners,
) -> Result<PlatformUpgrader, String> {
    upgrade::Upgrader::new(config, listeners)
}

#[cfg(not(unix))]
pub(crate) fn prepare_upgrade(_: &Config, _: &Listeners) -> Result<PlatformUpgrader, String> {
    Err("upgrades exist only on Unix".into())
}

/// Serves until SIGINT, SIGTERM, a handle's shutdown or a finished upgrade, reloading the
/// configuration on SIGHUP. The file is read off this loop: a stop signal is answered at once,
/// even while a reload reads a slow file; a SIGHUP during a reload starts one more when it
/// ends. An upgrade runs beside the loop too; one that fails leaves the server serving.
pub(crate) async fn wait_for_shutdown(
    shared: &Shared,
    signals: &mut Signals,
    started: &Parts,
    logging: Option<&Logging>,
    notify: Systemd,
    upgrader: Result<PlatformUpgrader, String>,
) -> Stop {
    let mut reading = None;
    let mut again = false;
    let mut upgrading: Option<Upgrading<'_>> = None;
    let upgrader = &upgrader;
    loop {
        tokio::select! {
            () = shared.stops.notified() => {
                tracing::info!("shutdown requested through the handle");
                return Stop::Asked;
            }
            () = shared.upgrades.notified() => start_upgrade(&mut upgrading, upgrader, "upgrade requested through the handle"),
            signal = signals.next() => match signal {
                Signal::Reload if reading.is_some() => again = true,
                Signal::Reload => {
                    notify.reloading();
                    reading = reload::reread(shared, started.tls.is_some());
                    if reading.is_none() {
                        notify.reloaded();
                    }
                }
                Signal::Upgrade => start_upgrade(&mut upgrading, upgrader, "SIGUSR2"),
                stop => {
                    tracing::info!(signal = %stop, "shutdown requested");
                    return Stop::Asked;
                }
            },
            read = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                reading = None;
                if let Ok(read) = read {
                    reload::apply(shared, started, logging, read);
                }
                if std::mem::take(&mut again) {
                    reading = reload::reread(shared, started.tls.is_some());
                }
                if reading.is_none() {
                    notify.reloaded();
                }
            }
            upgraded = async { upgrading.as_mut().expect("guarded").await }, if upgrading.is_some() => {
                upgrading = None;
                match upgraded {
                    Ok(pid) => {
                        tracing::info!(pid, "upgrade: the new process is serving; draining this one");
                        return Stop::Upgraded;
                    }
                    Err(e) => tracing::error!("{e}; this process keeps serving"),
                }
            }
        }
    }
}

/// Starts an upgrade, unless one is in progress or none can be made (logged).
fn start_upgrade<'a>(
    upgrading: &mut Option<Upgrading<'a>>,
    upgrader: &'a Result<PlatformUpgrader, String>,
    why: &str,
) {
    if upgrading.is_some() {
        tracing::warn!("{why}: an upgrade is already in progress");
        return;
    }
    match upgrader {
        #[cfg(unix)]
        Ok(upgrader) => {
            tracing::info!("{why}: upgrading");
            *upgrading = Some(Box::pin(upgrader.start()));
        }
        #[cfg(not(unix))]
        Ok(never) => match *never {},
        Err(e) => tracing::error!("{why}: cannot upgrade: {e}"),
    }
}
