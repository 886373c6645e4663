//! A genro-asgi server on a free port, in process (feature `server`).

use std::{net::SocketAddr, time::Duration};

use genro_server::{AsgiServer, Config, IntoApplication, ServerContext, ServerHandle};

/// A server started by [`start_server`]: its address, its handle and its task.
#[derive(Debug)]
pub struct RunningServer {
    /// The main port's address.
    pub addr: SocketAddr,
    /// The server's handle.
    pub handle: ServerHandle,
    /// What its handlers reach: the registry of requests in flight, the metrics.
    pub context: ServerContext,
    /// The task serving; it ends with the server.
    pub task: tokio::task::JoinHandle<Result<(), genro_server::Error>>,
}

impl RunningServer {
    /// `http://ADDR{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's metrics in the Prometheus text format, read in process (no connection
    /// of its own).
    #[must_use]
    pub fn metrics(&self) -> String {
        crate::metrics_text(&self.context.metrics().registry())
    }

    /// Shuts the server down and waits until it has stopped.
    ///
    /// # Panics
    ///
    /// When it does not stop within 10 s, or stops with an error.
    pub async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .expect("the server task")
            .expect("the server stops cleanly");
    }
}

/// Starts `app` on a free port (`[server] port = 0`, then `ini`), without the server's own
/// logging, as `configure` sets it up (hooks, pools); returns once it listens.
///
/// # Panics
///
/// When the configuration is refused, or the server does not listen within 5 s.
pub async fn start_server<A: IntoApplication + Send + 'static>(
    ini: &str,
    configure: impl FnOnce(AsgiServer) -> AsgiServer,
    app: A,
) -> RunningServer {
    let config = Config::from_ini_str(&format!("[server]\nport = 0\n{ini}"), "test.ini", [])
        .expect("a valid configuration");
    let server = configure(AsgiServer::from_config(config).without_logging());
    let handle = server.handle();
    let context = server.context();
    let task = tokio::spawn(server.serve(app));
    let addr = tokio::time::timeout(Duration::from_secs(5), handle.local_addr())
        .await
        .expect("listening in time")
        .expect("listening");
    RunningServer {
        addr,
        handle,
        context,
        task,
    }
}
