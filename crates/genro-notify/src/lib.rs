//! One way for genro to tell someone: the [`Notifier`] trait, the [`Notification`] it carries,
//! a [`Notifiers`] set that calls each notifier independently, and a webhook notifier.
//!
//! The watchdog's stuck-request reports and the error layer's critical errors are both
//! [`Notification`]s, both carry the request as a [`RequestInfo`], and both go to the same
//! [`Notifiers`]: configure a webhook once and give it to both.
//!
//! - [`Notifier`]: anything that delivers a notification. Closures are notifiers.
//! - [`Notifiers`]: a set of notifiers, each with its own bounded queue, its own task and its own
//!   time limit, so that a slow, hung or panicking notifier never silences another, and a flood
//!   of reports never starts a flood of tasks.
//! - `WebhookNotifier` (feature `webhook`): posts each notification as JSON over HTTP or HTTPS,
//!   with a bounded queue, retries with capped exponential backoff, de-duplication, and a
//!   bounded read of the answer.
//!
//! # Example
//!
//! ```
//! use genro_notify::{Notification, Notifiers, Severity};
//! use std::sync::{Arc, Mutex};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let notifiers = Notifiers::new().with("probe", {
//!     let seen = seen.clone();
//!     move |n: Notification| {
//!         seen.lock().unwrap().push(n.message);
//!         async {}
//!     }
//! });
//! notifiers.send(Notification::new("deploy", Severity::Warning, "canary at 5%"));
//! # for _ in 0..100 { if !seen.lock().unwrap().is_empty() { break } tokio::task::yield_now().await; }
//! assert_eq!(seen.lock().unwrap().as_slice(), ["canary at 5%"]);
//! # }
//! ```
//!
//! # Why these dependencies
//!
//! The webhook uses hyper's client (hyper-util's pooled legacy client) with rustls through
//! hyper-rustls: the same HTTP stack the server side runs on, and a TLS implementation in Rust
//! with the `ring` provider, which builds without a C toolchain for assembly or cmake. Root
//! certificates come from the system (rustls-native-certs), plus any private root you add.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `webhook` | no    | `WebhookNotifier`, and with it hyper's client, rustls and the system's root certificates |
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod log;
mod notification;
mod notifier;
#[cfg(feature = "webhook")]
mod webhook;

pub use notification::{Notification, RequestInfo, Severity, MAX_REPORTED_PATH};
pub use notifier::{
    Notifier, Notifiers, NotifyFuture, DEFAULT_NOTIFY_QUEUE, DEFAULT_NOTIFY_TIMEOUT,
};
#[cfg(feature = "webhook")]
pub use webhook::{
    Outcome, WebhookBuilder, WebhookError, WebhookNotifier, MAX_BACKOFF, MAX_RESPONSE_BODY,
};

/// What [`request_event!`] needs from other crates; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use genro_envelope::{plumbing::truncated, RequestEnvelope};
    pub use tracing;

    pub use crate::log::SpanFields;
}
