//! The signals the server answers, as an enum: SIGTERM and SIGINT stop it (the drain), SIGHUP
//! reloads its configuration, SIGUSR2 upgrades it (a new process takes its sockets over). The listeners are installed once, when the server starts, and
//! live until it stops: a signal that arrives while another is being handled waits its turn
//! instead of being lost.

use std::fmt;

/// A signal the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM: drain and stop.
    Terminate,
    /// SIGINT (Ctrl-C): drain and stop.
    Interrupt,
    /// SIGHUP: reload the configuration.
    Reload,
    /// SIGUSR2: hand the sockets to a new process of the executable, then drain.
    Upgrade,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
            Self::Reload => "SIGHUP",
            Self::Upgrade => "SIGUSR2",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The signal listeners of one run of the server.
pub(crate) struct Signals {
    #[cfg(unix)]
    listeners: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

#[cfg(unix)]
impl Signals {
    /// Installs the listeners. One that cannot be installed is logged and left out: the server
    /// still runs, and still stops through its handle.
    pub(crate) fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let mut listeners = Vec::new();
        for (which, kind) in [
            (Signal::Terminate, SignalKind::terminate()),
            (Signal::Interrupt, SignalKind::interrupt()),
            (Signal::Reload, SignalKind::hangup()),
            (Signal::Upgrade, SignalKind::user_defined2()),
        ] {
            match signal(kind) {
                Ok(listener) => listeners.push((which, listener)),
                Err(e) => {
                    tracing::warn!(signal = %which, error = %e, "cannot listen for the signal")
                }
            }
        }
        Self { listeners }
    }

    /// The next signal; pending forever when there are no listeners.
    pub(crate) async fn next(&mut self) -> Signal {
        if self.listeners.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            for (which, listener) in &mut self.listeners {
                if listener.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*which);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

#[cfg(not(unix))]
impl Signals {
    pub(crate) fn install() -> Self {
        Self {}
    }

    pub(crate) async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}

impl Signals {
    /// The next signal that stops the server; reloads and upgrades that come meanwhile are
    /// ignored (the server is on its way out).
    pub(crate) async fn next_stop(&mut self) -> Signal {
        loop {
            match self.next().await {
                signal @ (Signal::Reload | Signal::Upgrade) => {
                    tracing::info!(%signal, "signal ignored: the server is stopping");
                }
                stop => return stop,
            }
        }
    }
}
