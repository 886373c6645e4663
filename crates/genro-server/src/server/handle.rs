//! [`ServerHandle`]: a server controlled from outside.

use std::{fmt, net::SocketAddr};

use crate::state::{Lifecycle, ListenAddrs, ServerContext};

/// Controls a server from outside: its bound addresses, readiness and shutdown. Cheap to clone;
/// get one with [`AsgiServer::handle`](crate::AsgiServer::handle) before serving.
#[derive(Clone)]
pub struct ServerHandle {
    context: ServerContext,
}

impl ServerHandle {
    pub(crate) fn new(context: ServerContext) -> Self {
        Self { context }
    }

    /// The addresses once the server has bound them (at once if it has); `None` if the server
    /// stopped first.
    pub async fn bound(&self) -> Option<ListenAddrs> {
        let shared = &self.context.shared;
        let mut bound = shared.bound.subscribe();
        let mut life = shared.lifecycle.subscribe();
        loop {
            let now = *bound.borrow_and_update();
            if now.main.is_some() {
                return Some(now);
            }
            if *life.borrow_and_update() >= Lifecycle::Stopped {
                return None;
            }
            tokio::select! {
                changed = bound.changed() => if changed.is_err() { return None },
                changed = life.changed() => if changed.is_err() { return None },
            }
        }
    }

    /// The main listener's address once bound (port 0 in the configuration picks a free one).
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.bound().await.and_then(|b| b.main)
    }

    /// Stops the server as SIGTERM does: readiness off, `[shutdown] drain_delay`, then the
    /// drain. A second call ends the delay at once. Returns at once.
    pub fn shutdown(&self) {
        self.context.shared.stops.notify_one();
    }

    /// Upgrades the server as SIGUSR2 does: a new process of the executable takes the
    /// listening sockets over, and once it is ready this one drains and stops. Returns at once;
    /// the outcome is logged, and when the upgrade fails this server keeps serving. Unix only.
    pub fn upgrade(&self) {
        self.context.shared.upgrades.notify_one();
    }

    /// Whether the server reports itself ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.context.is_ready()
    }

    /// Waits until the server has stopped.
    pub async fn stopped(&self) {
        let mut life = self.context.shared.lifecycle.subscribe();
        let _ = life.wait_for(|l| *l == Lifecycle::Stopped).await;
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("bound", &self.context.bound())
            .field("ready", &self.is_ready())
            .finish()
    }
}
