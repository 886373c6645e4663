//! The genro-asgi server: any tower service on hyper, configured by a `.ini` file, with every
//! request enveloped, tracked, measured, error-handled and watched.
//!
//! # Example
//!
//! A server on a free port, one request over TCP, then a drain:
//!
//! ```
//! use axum::{routing::get, Router};
//! use genro_server::{AsgiServer, Config};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), genro_server::Error> {
//! let config = Config::from_ini_str("[server]\nport = 0\n", "example.ini", [])?;
//! let server = AsgiServer::from_config(config);
//! let handle = server.handle();
//! let serving = tokio::spawn(server.serve(Router::new().route("/", get(|| async { "hello\n" }))));
//!
//! let addr = handle.local_addr().await.expect("the server is listening");
//! let mut tcp = tokio::net::TcpStream::connect(addr).await?;
//! tcp.write_all(b"GET / HTTP/1.1\r\nhost: example\r\nx-request-id: order-42\r\nconnection: close\r\n\r\n").await?;
//! let mut response = String::new();
//! tcp.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
//! assert!(response.contains("\r\nx-request-id: order-42\r\n"), "{response}");
//! assert!(response.ends_with("\r\n\r\nhello\n"), "{response}");
//!
//! handle.shutdown(); // as SIGTERM does: not ready, drain, stop
//! serving.await??;
//! # Ok(())
//! # }
//! ```
//!
//! A program usually reads its file and lets [`AsgiServer::run`] own the runtime, the signals
//! and the exit:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use genro_server::{AsgiServer, ServerContext};
//!
//! async fn hello(server: ServerContext) -> String {
//!     let name = server.config().application.app_name().unwrap_or("app").to_owned();
//!     format!("hello from {name}\n")
//! }
//!
//! fn main() -> Result<(), genro_server::Error> {
//!     AsgiServer::from_config_path("server.ini")?
//!         .on_startup(|_server| async { Ok::<_, std::io::Error>(()) })
//!         .run(Router::new().route("/", get(hello)))
//! }
//! ```
//!
//! # What it sets up
//!
//! From the [`Config`]:
//! - logging (`[logging]`): tracing-subscriber with Python-style templates
//!   (`%(asctime)s - %(levelname)s - %(message)s`), JSON, compact or pretty lines, to stderr or a
//!   file; every line written while a request is handled carries its ids. A subscriber the
//!   application installed first is kept;
//! - the request path: [`GenroLayer`](genro_stack::GenroLayer) (envelope, registry, metrics,
//!   errors) inside an axum router's routing, so route templates reach the metrics; inside the
//!   error layer, the server's limits ([`app::Limits`]): the body limit by `Content-Length`
//!   (413), the concurrency limit (503 with `Retry-After`), the request timeout (504) and
//!   cancellation; on the body itself, the body limit and the body read timeout;
//! - the metrics endpoint (`[metrics] endpoint`, on the main port or `export_port`), and
//!   `/health/live` and `/health/ready` (503 while starting and draining);
//! - the watchdog (`[watchdog]`), and one notification path for critically stuck requests and
//!   critical errors to `[errors] notify_webhook`;
//! - hyper-util's auto builder: HTTP/1.1 and HTTP/2 (h2c) on one port, WebSocket upgrades,
//!   `[limits]` (header read timeout, always on; headers; body; connections), `workers` tokio
//!   threads;
//! - executors (`[executors]`): a bounded pool for blocking work, and a pool of worker processes
//!   running named jobs of the same binary; both are part of the drain;
//! - TLS (`[ssl]`) with rustls: ALPN for HTTP/2 and HTTP/1.1, a handshake timeout, and
//!   certificates reloaded on SIGHUP without dropping connections;
//! - a lifecycle: `on_startup` hooks before the first connection is accepted, a bounded drain on
//!   SIGINT, SIGTERM or [`ServerHandle::shutdown`], then `on_shutdown` hooks.
//!
//! Handlers reach the server through [`ServerContext`] (an axum extractor, and
//! [`ServerContext::from_extensions`] for other stacks): `request.app.server.*` of the original
//! design.
//!
//! # The request path
//!
//! What the server makes, and when:
//!
//! - **once per process**: the configuration, the registry, the metrics and their families, the
//!   `GenroLayer` (the envelope, registry, metrics and error settings behind one `Arc`), the
//!   limits (one semaphore for the concurrency limit), hyper's connection builder, the built-in
//!   endpoints, and the router, converted once with `with_state(())` as `axum::serve` does;
//! - **once per connection**: a task, its activity (the requests in progress, the progress of
//!   its writes), and one timer that is its header read timeout, idle timeout and write timeout
//!   at once, moved as the connection lives. The timer and the server's lifecycle (the drain)
//!   are polled only when they fire, not on every wake of the connection. The client's address
//!   is known here and reaches each envelope without being copied into the request;
//! - **per request**: the envelope (one `Arc`: the ids, method, URI, client, start, and the
//!   server's context by reference), its entry in the registry, its measurement, the error
//!   layer's context, the limits' future, the `x-request-id` header, and axum's own per-route
//!   work (routing, a boxed future and a boxed body, which any per-route layer costs). Nothing
//!   else is allocated by the server for a request: no timer (the header read timeout is the
//!   connection's), no extension of its own.
//!
//! What each step costs per request, the floors (the required work written with `http` and
//! `std` alone) and their history are measured by the workspace's benchmarks, and written in
//! the README's "The request path over a socket".
//!
//! # Where things are
//!
//! The crate root has what a server binary names: [`AsgiServer`], [`ServerHandle`],
//! [`ServerContext`], [`Config`] and [`ConfigError`], and [`AsgiApplication`] for a service that
//! is not an axum `Router`. [`config`] has the sections and the kinds of value, [`cli`] the
//! shared command line, [`executor`] the pools, [`app`] the types a served application is made
//! of, and `grpc` (feature `tonic`) gRPC health that follows the drain.
//!
//! # Why these dependencies
//!
//! hyper and hyper-util serve HTTP (the same stack axum's own `serve` uses); tower-http gives
//! CORS and compression, and tower the error types of the timeout and the load shedding, which
//! the error layer knows; tracing-subscriber and tracing-appender write
//! the logs, the latter without blocking the runtime on a file; arc-swap holds the live
//! configuration; strsim finds the "did you mean" of an unknown key. The `.ini` reader is this
//! crate's own: the well-kept ini crates do not keep the line of each key, which every
//! configuration error names.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `axum`  | yes     | serving an axum `Router` directly, the [`ServerContext`] extractor |
//! | `tonic` | no      | serving tonic routes through `AsgiApplication::from_service`, and `grpc::health_follows_drain` |
//! | `taskdump` | no   | what a stuck request is waiting on, in the watchdog's critical report, the console's `show --trace` and the drain report (a build with `--cfg tokio_unstable`) |
//! | `opentelemetry` | no | each request's span joins the client's W3C trace in a tracing-opentelemetry subscriber the application installs |
//!
//! # Minimum supported Rust version
//!
//! 1.89.

pub mod cli;
pub mod config;
mod conn;
pub mod executor;
#[cfg(feature = "tonic")]
pub mod grpc;
mod logging;
mod request;
mod server;
mod slots;
mod state;
mod suggest;
mod tls;

pub use config::{Config, ConfigError};
pub use request::app::{self, AsgiApplication, IntoApplication};
pub use server::{AsgiServer, ServerHandle, StartError};
pub use state::{ListenAddrs, ServerContext};

/// The error of the server's functions, and what handlers return: one type, so that
/// `fn main() -> Result<(), genro_server::Error>` works with `?` on both.
pub type Error = genro_errors::Error;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// The README's table of keys lists exactly the keys the resolver reads, each with the
    /// default in force and whether SIGHUP applies it live.
    #[test]
    fn the_readme_table_lists_every_key_its_default_and_its_reload() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Every key")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README has a section \"Every key\"");
        let rows: BTreeMap<&str, (String, &str)> = table
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                let key = cells[0].trim_start_matches("| ").trim_matches('`');
                let default = match cells[1] {
                    "none" => String::new(),
                    shown => shown.trim_matches('`').to_owned(),
                };
                (key, (default, cells[4].trim_end_matches(" |")))
            })
            .collect();
        let config = crate::Config::default();
        let known: BTreeMap<String, String> = config
            .effective()
            .iter()
            .map(|e| (format!("{}.{}", e.section, e.key), e.value.clone()))
            .collect();
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            known.keys().map(String::as_str).collect::<Vec<_>>(),
            "the README's keys and the resolver's differ"
        );
        for (key, (default, reload)) in &rows {
            assert_eq!(default, &known[*key], "the README's default of {key}");
            let live = crate::server::LIVE.contains(key);
            assert_eq!(*reload, if live { "live" } else { "restart" }, "{key}");
        }
    }
}
