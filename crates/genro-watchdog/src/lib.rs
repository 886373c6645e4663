//! Stuck-request detection for tower services: warn and critical thresholds, once-per-request
//! reports, and a webhook notifier.
//!
//! A [`Watchdog`] scans an [`EnvelopeRegistry`](genro_registry::EnvelopeRegistry) every
//! `interval`. A request older than `timeout` is logged once at warning level; older than
//! `critical`, once more at error level, and the [`Notifier`] is called once. Each report carries
//! the request's ids, method, path, route, age, phase (still handling, or streaming its body),
//! client and the annotations its handler wrote. Counters and gauges go to a prometheus-client
//! `Registry` through [`Watchdog::register_metrics`].
//!
//! The watchdog only reports. It never cancels a request.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use genro_registry::EnvelopeRegistry;
//! use genro_watchdog::{Watchdog, WatchdogConfig, WebhookNotifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = EnvelopeRegistry::new();
//! let webhook = WebhookNotifier::builder("https://alerts.example.com/hooks/genro")?
//!     .timeout(Duration::from_secs(3))
//!     .build()?;
//! let watchdog = Watchdog::new(
//!     registry.clone(),
//!     WatchdogConfig {
//!         interval: Duration::from_secs(30),
//!         timeout: Duration::from_secs(60),
//!         critical: Duration::from_secs(300),
//!     },
//! )
//! .notifier(webhook)
//! .spawn()?;
//! // ... serve with RegistryLayer::new(registry) ...
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
//!   the envelopes of stuck requests; logging and notifying happen after. The request path does
//!   not notice a scan.
//! - [`WebhookNotifier`] posts JSON with hyper and rustls (ring provider, the system's root
//!   certificates plus any you add). Its queue is bounded, each attempt has a timeout, transient
//!   failures are retried with exponential backoff, and repeats are de-duplicated, so a slow or
//!   dead endpoint can neither block the caller nor grow memory. The same notifier serves
//!   critical-error alerts from other layers: build a [`Notification`] and call
//!   [`Notifier::notify`].
//!
//! # Feature flags
//!
//! None.
//!
//! # Minimum supported Rust version
//!
//! 1.88.

mod notifier;
mod report;
mod watchdog;

pub use notifier::{Notifier, NotifyFuture, WebhookBuilder, WebhookError, WebhookNotifier};
pub use report::{Notification, RequestInfo, Severity};
pub use watchdog::{ConfigError, ScanSummary, Watchdog, WatchdogConfig, WatchdogHandle};
