//! Stuck-request detection for tower services: warn and critical thresholds, once-per-request
//! reports, and a webhook notifier.
//!
//! A [`Watchdog`] scans an [`EnvelopeRegistry`](genro_registry::EnvelopeRegistry) every
//! `interval`. A request older than `timeout` is logged once at warning level; older than
//! `critical`, once more at error level, and each [`Notifier`](genro_notify::Notifier) is called once. Each report carries
//! the request's ids, method, path, route, age, phase (still handling, or streaming its body),
//! client and the annotations its handler wrote. Counters and gauges go to a prometheus-client
//! `Registry` through [`Watchdog::register_metrics`].
//!
//! A critical report also answers "what is it waiting on": its `trace` field (the log line's,
//! and the notification's `details.trace`) holds the async stack of the request's future, from
//! one batch of traces per scan ([`genro_envelope::taskdump`], an opt-in build), or a sentence saying
//! why there is none and, without the build, how to turn it on. See
//! [`Watchdog::task_dumper`].
//!
//! The watchdog only reports. It never cancels a request.
//!
//! # Example
//!
//! A request that takes too long is reported once at `timeout` and once more at `critical`, to
//! the log and to each notifier (a closure here; `WebhookNotifier` with the `webhook` feature):
//!
//! ```
//! use std::{sync::{Arc, Mutex}, time::Duration};
//! use genro_envelope::EnvelopeLayer;
//! use genro_notify::{Notification, Severity};
//! use genro_registry::{EnvelopeRegistry, RegistryLayer};
//! use genro_watchdog::{Watchdog, WatchdogConfig};
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let registry = EnvelopeRegistry::new();
//! let reports = Arc::new(Mutex::new(Vec::new()));
//! let watchdog = Watchdog::new(
//!     registry.clone(),
//!     WatchdogConfig {
//!         interval: Duration::from_millis(10),
//!         timeout: Duration::from_millis(30),
//!         critical: Duration::from_millis(60),
//!     },
//! )
//! .notifier({
//!     let reports = reports.clone();
//!     move |n: Notification| {
//!         reports.lock().unwrap().push((n.severity, n.request.map(|r| r.path)));
//!         async {}
//!     }
//! })
//! .spawn()?;
//!
//! let app = ServiceBuilder::new()
//!     .layer(EnvelopeLayer::new())
//!     .layer(RegistryLayer::new(registry.clone()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         tokio::time::sleep(Duration::from_millis(150)).await; // stuck, for a while
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("late")))
//!     }));
//! let res = app.oneshot(Request::get("/export").body(())?).await?;
//! assert_eq!(res.status(), 200);
//! drop(res); // the body is dropped: the request leaves the registry
//! # for _ in 0..100 { if !reports.lock().unwrap().is_empty() { break } tokio::task::yield_now().await; }
//! // Notifiers hear of critical requests only (warnings go to the log).
//! assert_eq!(
//!     reports.lock().unwrap().as_slice(),
//!     [(Severity::Critical, Some("/export".to_owned()))]
//! );
//! watchdog.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - Thresholds live in an `arc-swap` cell: [`WatchdogHandle::set_config`] changes them while
//!   the watchdog runs (hot reload), with no lock on the scan.
//! - A scan locks one registry shard at a time and, under the lock, only compares ages and clones
//!   the envelopes of stuck requests; logging and notifying happen after. The running watchdog
//!   yields to the runtime between shards. The request path does not notice a scan.
//! - Notifications go through genro-notify's [`Notifiers`](genro_notify::Notifiers): each notifier has its own bounded
//!   queue, task and time limit, so one slow or broken notifier never silences another, and a
//!   mass stall of thousands of requests never starts thousands of tasks. The error layer's
//!   critical errors use the same path: give both the same [`Notifiers`](genro_notify::Notifiers).
//! - `WebhookNotifier` (feature `webhook`) posts JSON with hyper and rustls. Its queue is
//!   bounded, each attempt has a timeout, transient failures are retried with capped exponential
//!   backoff, and repeats are de-duplicated.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `webhook` | no    | genro-notify's `WebhookNotifier`, with hyper's client and rustls |
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod watchdog;

pub use watchdog::{ScanSummary, Watchdog, WatchdogConfig, WatchdogError, WatchdogHandle};
