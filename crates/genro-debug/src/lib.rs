//! The remote debug console of genro-asgi: list, inspect and cancel the requests a server has in
//! flight, and hold failing requests until a debugger has looked at them.
//!
//! Rust has no pdb and no frame locals, so the console works on what a request carries: its
//! envelope (ids, method, path, route, client, age, phase, annotations, and its headers with
//! secrets masked), its error (`Display`, the `source()` chain, the backtrace when capture is
//! on) and what handlers annotated.
//!
//! And it answers "what is this request waiting on": `show ID --trace` (a `trace` button in the
//! web page) returns the async stack of the request's future, traced by
//! [`genro_envelope::taskdump`] within its limits (an opt-in build; without it the answer says
//! how to turn it on).
//!
//! - [`RemoteDebugServer`] listens on its own port and speaks the [`protocol`] over a
//!   WebSocket; it also serves a small web page (no external assets) that does the same in a
//!   browser.
//! - [`Holds`] is the error-layer observer behind hold-on-error (`remote_pdb`): a failing
//!   request waits at most `hold_timeout` for a console to `continue` or `release` it.
//! - [`Client`] is a session from Rust; the `genro-debug HOST:PORT` binary (feature `cli`) is
//!   the console for people and scripts.
//!
//! genro-server starts all of it from `[debug]`; the example below wires it by hand.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use genro_debug::{protocol::{ClientMessage, ServerMessage}, Client, DebugConfig, Holds, RemoteDebugServer, Secret};
//! use genro_envelope::{CancelLayer, EnvelopeLayer};
//! use genro_errors::ErrorLayer;
//! use genro_metrics::MetricsCollector;
//! use genro_registry::EnvelopeRegistry;
//! use genro_stack::GenroLayer;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = EnvelopeRegistry::new();
//! let holds = Holds::new(Duration::from_secs(30), 8);
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(
//!                 GenroLayer::new(&registry, &MetricsCollector::new())
//!                     .envelope(EnvelopeLayer::new().keep_headers(true))
//!                     .errors(holds.install(ErrorLayer::new())),
//!             )
//!             // Inside the error layer: a cancelled request is answered 503 with an error id.
//!             .layer(CancelLayer::new()),
//!     );
//! # let _ = app;
//!
//! let secret = Secret::new("a secret of at least 16 bytes");
//! let mut config = DebugConfig::new(secret.clone());
//! config.port = 0;
//! let console = RemoteDebugServer::new(registry, config)?.holds(&holds).bind().await?;
//!
//! let mut session = Client::connect(&console.local_addr().to_string(), &secret).await?;
//! let reply = session.call(&ClientMessage::Ls).await?;
//! assert_eq!(reply, ServerMessage::Requests { requests: vec![] });
//! session.close().await;
//! console.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Protocol
//!
//! JSON text messages over a WebSocket at `/ws`, each with a `type`; the [`protocol`] module
//! defines them all, and [`protocol::VERSION`] is 1. A session, as the console's log of it
//! would show (`→` client to server):
//!
//! ```text
//! ← {"type":"challenge","version":1,"nonce":"9f86d0…(64 hex)","context":"genro-debug/1 127.0.0.1:8001"}
//! → {"type":"login","answer":"5e884898…(64 hex): HMAC-SHA256(secret, nonce ‖ context)"}
//! ← {"type":"welcome","version":1,"holding":true}
//! → {"type":"ls"}
//! ← {"type":"requests","requests":[{"id":"4f1c2a9b","method":"GET","target":"/slow","age_s":2.31,"phase":"handling","annotations":1}]}
//! → {"type":"cancel","id":"4f1c2a9b"}
//! ← {"type":"done","message":"cancelled 4f1c2a9b: it ends with 503"}
//! ```
//!
//! Each command gets one reply, in order: the command's own (`requests`, `request`,
//! `held_list`, `attached`, `done`) or `error`, after which the session goes on. A `refused`
//! reply ends the session.
//!
//! # Security
//!
//! The console can read request headers and cancel requests, so it is off unless configured,
//! and each check below defends against one attack:
//!
//! | check | when | defends against |
//! |---|---|---|
//! | binds `127.0.0.1` by default | start | exposure to the network by accident |
//! | a secret of at least 16 bytes, or no start | start | guessable secrets |
//! | `allowed_ips` on the socket's peer address (`::ffff:a.b.c.d` is `a.b.c.d`; never `X-Forwarded-For`) | accept, before any byte is read or answered | anyone outside the allowed networks, and forged forwarding headers |
//! | `Host` must be an IP literal, `localhost` or a name in `allowed_hosts`; a browser's `Origin` must be the console's own | every HTTP request, the handshake included (403) | DNS rebinding (a page on evil.example whose name resolves to 127.0.0.1, as in Werkzeug's CVE-2024-34069) and cross-site WebSockets |
//! | challenge-response: HMAC-SHA256 of a fresh 32-byte nonce and the `Host`, checked in constant time | login | the secret on the wire, replay, timing attacks |
//! | 10 failures in 60 s lock that IP's wrong answers out for 60 s (refused a second late); its right answer still logs in; other IPs are unaffected | login | brute force, without a lockout an attacker could trigger against the operator, who shares 127.0.0.1 with every local user (Werkzeug's PIN) |
//! | a connection holds a session only once logged in; before that it holds one of 16 places of its own for at most `login_timeout` from its accept, and when all are taken the oldest is closed for the newest | always | stalled connections (trickled heads, WebSockets that never answer) keeping the operator out |
//! | sessions, message size and idle time are bounded | always | exhaustion by a client that is allowed in |
//! | an audit line (`genro_debug::audit` target) for every login, refusal, command and release, with the peer address (`ls` and `held`, which the web view polls every second, at DEBUG; the rest at INFO or WARN) | always | acting unseen |
//!
//! The secret never crosses the wire and never appears in logs, metrics, errors or `Debug`
//! output ([`Secret`]'s `Debug` shows its length only). The web page does the challenge-response
//! with WebCrypto; the secret stays in the page's memory, never in a URL or a cookie.
//! WebCrypto needs a secure context: `http://127.0.0.1` and `http://localhost` are; for another
//! host, reach the console through an SSH tunnel (`ssh -L 8001:127.0.0.1:8001 server`).
//!
//! # Dependencies
//!
//! - `tokio-tungstenite` for the WebSocket, on the connection `hyper` already parsed: the
//!   upgrade follows hyper's own upgrade API, so the page and the socket share one port.
//! - `hmac` and `sha2` (RustCrypto) for HMAC-SHA256; `Mac::verify_slice` compares with
//!   `subtle`'s constant-time equality. `getrandom` for the nonce, from the operating system.
//! - `rustyline` for the console's line editing and history, `rpassword` for the no-echo
//!   secret prompt (feature `cli`).
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `cli`   | yes     | the `genro-debug` binary and its dependencies (`rustyline`, `rpassword`) |
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod allow;
mod auth;
mod client;
mod config;
mod hold;
mod pending;
pub mod protocol;
mod server;
mod session;
mod state;
mod view;

pub use allow::{AllowList, Cidr, InvalidCidr};
pub use auth::{FailureLimit, Secret, MIN_SECRET_LEN};
pub use client::{Client, ClientError};
pub use config::{DebugConfig, DebugError, DEFAULT_MAX_MESSAGE_SIZE};
pub use hold::Holds;
pub use server::{RemoteDebugServer, RunningDebugServer};
pub use state::LogFilter;
pub use view::{ALWAYS_MASKED, MASKED};
