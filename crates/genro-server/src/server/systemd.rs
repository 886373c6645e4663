//! systemd's notify protocol, through the sd-notify crate (a small, dependency-free writer of
//! the protocol's datagrams): `READY=1` once the server accepts, `RELOADING=1` and `READY=1`
//! around a SIGHUP reload, `STOPPING=1` when a stop begins, and `WATCHDOG=1` pings at half the
//! interval systemd asks for (`WatchdogSec=`, passed as `WATCHDOG_USEC`). Without
//! `NOTIFY_SOCKET` (not started by systemd with `Type=notify`) nothing is sent.
//!
//! A server started by an upgrade also sends `MAINPID=` with its own pid, so that systemd
//! follows the new process (the unit needs `NotifyAccess=all`: the message comes from a process
//! that is not yet the main one).

#[cfg(unix)]
use sd_notify::NotifyState;

/// The notifications of one run of the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Systemd {
    enabled: bool,
}

impl Systemd {
    pub(crate) fn from_env() -> Self {
        Self {
            enabled: cfg!(unix) && std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    #[cfg(unix)]
    fn send(self, what: &str, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "systemd notify: cannot send {what}");
        }
    }

    /// The server accepts connections; `upgraded`: it took over from the process that started it.
    pub(crate) fn ready(self, upgraded: bool) {
        #[cfg(unix)]
        if upgraded {
            self.send(
                "READY",
                &[NotifyState::MainPid(std::process::id()), NotifyState::Ready],
            );
        } else {
            self.send("READY", &[NotifyState::Ready]);
        }
        #[cfg(not(unix))]
        let _ = upgraded;
    }

    /// A reload begins (systemd 253 and later require the monotonic time beside it).
    pub(crate) fn reloading(self) {
        #[cfg(unix)]
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send("RELOADING", &[NotifyState::Reloading, now]),
            Err(_) => self.send("RELOADING", &[NotifyState::Reloading]),
        }
    }

    /// The reload ended (applied or not): ready again.
    pub(crate) fn reloaded(self) {
        #[cfg(unix)]
        self.send("READY", &[NotifyState::Ready]);
    }

    /// The server begins to stop.
    pub(crate) fn stopping(self) {
        #[cfg(unix)]
        self.send("STOPPING", &[NotifyState::Stopping]);
    }

    /// Pings systemd's watchdog at half the interval it asks for, until the task is aborted;
    /// `None` when no watchdog is asked for. The pings run on the server's runtime: a runtime
    /// that stops making progress stops them, and systemd restarts the service.
    pub(crate) fn watchdog(self) -> Option<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        {
            if !self.enabled {
                return None;
            }
            let every = sd_notify::watchdog_enabled()? / 2;
            let every = every.max(std::time::Duration::from_millis(10));
            tracing::debug!(?every, "systemd watchdog: pinging");
            Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    self.send("WATCHDOG", &[NotifyState::Watchdog]);
                }
            }))
        }
        #[cfg(not(unix))]
        None
    }
}
