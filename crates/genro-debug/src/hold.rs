//! Holding failing requests for a debugger: an error-layer observer that parks a failing
//! request's response until a console releases it or `hold_timeout` passes.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use genro_envelope::Phase;
use genro_errors::{ErrorLayer, ErrorReport, Observer};
use http::StatusCode;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::{sync::oneshot, time::Instant};

use crate::protocol::{HeldDetail, HeldSummary};

/// How a held request is let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// With its own error response.
    Continue,
    /// With this status instead.
    Status(StatusCode),
    /// The server is draining.
    Drain,
}

struct Entry {
    report: Arc<ErrorReport>,
    since: Instant,
    release: Option<oneshot::Sender<Release>>,
}

/// The requests held on error, shared by the error layer's observer and the console.
///
/// A request is held when its error response is a server error (5xx, a panic included) and it
/// was not cancelled from the console; client errors (4xx) are answered at once. Cancelling a
/// held request from the console releases it with 503.
///
/// ```
/// use std::time::Duration;
/// use genro_debug::Holds;
/// use genro_errors::ErrorLayer;
///
/// let holds = Holds::new(Duration::from_secs(30), 8);
/// // The observer, and an observer timeout long enough for a hold.
/// let errors = holds.install(ErrorLayer::new());
/// # let _ = errors;
/// ```
#[derive(Clone)]
pub struct Holds {
    inner: Arc<Inner>,
}

struct Inner {
    timeout: Duration,
    max: usize,
    on: AtomicBool,
    held: Mutex<Vec<Entry>>,
    not_held: Counter,
    held_total: Counter,
    held_now: Gauge,
}

impl Holds {
    /// Holds at most `max` failing requests at once, each for at most `timeout`.
    #[must_use]
    pub fn new(timeout: Duration, max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                timeout,
                max,
                on: AtomicBool::new(true),
                held: Mutex::new(Vec::new()),
                not_held: Counter::default(),
                held_total: Counter::default(),
                held_now: Gauge::default(),
            }),
        }
    }

    /// Adds the hold observer to `layer`, with an observer timeout a little longer than the
    /// hold (the error layer aborts observers past its timeout).
    #[must_use]
    pub fn install(&self, layer: ErrorLayer) -> ErrorLayer {
        layer
            .observer(self.observer())
            .observer_timeout(self.inner.timeout + Duration::from_secs(1))
    }

    /// The error-layer observer that holds failing requests.
    #[must_use]
    pub fn observer(&self) -> impl Observer {
        let holds = self.clone();
        move |report: Arc<ErrorReport>| {
            let holds = holds.clone();
            async move { holds.hold(report).await }
        }
    }

    /// The longest a request is held.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How many requests are held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Errors that were not held because `max` requests were held already.
    #[must_use]
    pub fn not_held(&self) -> u64 {
        self.inner.not_held.get()
    }

    /// Releases every held request with its own response, and holds no more: the drain calls
    /// it when it begins.
    pub fn release_all(&self) {
        self.inner.on.store(false, Ordering::Release);
        for entry in self.lock().iter_mut() {
            if let Some(tx) = entry.release.take() {
                let _ = tx.send(Release::Drain);
            }
        }
    }

    /// Registers `debug_held_requests`, `debug_held_total` and `debug_not_held_total`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "debug_held_requests",
            "Failing requests held for a debugger now",
            self.inner.held_now.clone(),
        );
        registry.register(
            "debug_held",
            "Failing requests held for a debugger",
            self.inner.held_total.clone(),
        );
        registry.register(
            "debug_not_held",
            "Failing requests not held because the most were held already",
            self.inner.not_held.clone(),
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn hold(&self, report: Arc<ErrorReport>) {
        // Server errors only: a client's error (a 404 a handler returned) is the client's to
        // fix. A request cancelled from the console is answered at once: its debugger asked.
        if !self.inner.on.load(Ordering::Acquire)
            || !report.status.is_server_error()
            || report.error_type == genro_errors::CANCELLED
        {
            return;
        }
        let envelope = report.envelope.clone();
        // Cancelled after its handler failed and before it got here: answered as cancelled,
        // without a hold (a cancel from now on is seen by the hold's own wait, below).
        if envelope.is_cancelled() {
            report.answer_with(StatusCode::SERVICE_UNAVAILABLE);
            return;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut held = self.lock();
            if held.len() >= self.inner.max {
                drop(held);
                self.inner.not_held.inc();
                tracing::warn!(
                    target: "genro_debug::audit",
                    error_id = %envelope.short_id(),
                    max_held = self.inner.max,
                    "error not held: the most requests are held already"
                );
                return;
            }
            held.push(Entry {
                report: report.clone(),
                since: Instant::now(),
                release: Some(tx),
            });
        }
        self.inner.held_total.inc();
        self.inner.held_now.inc();
        // Removes the entry however the hold ends, the error layer's own timeout included.
        let _unheld = Unhold {
            holds: self,
            report: &report,
        };
        envelope.set_phase(Phase::Held);
        tracing::info!(
            target: "genro_debug::audit",
            error_id = %envelope.short_id(),
            status = report.status.as_u16(),
            hold_timeout = ?self.inner.timeout,
            "request held for a debugger"
        );
        // Cancelling a held request (from the console, or by any holder of its envelope)
        // releases it with the 503 a cancelled request gets.
        let released = tokio::select! {
            released = tokio::time::timeout(self.inner.timeout, rx) => released,
            () = genro_envelope::plumbing::cancelled(&envelope) => {
                Ok(Ok(Release::Status(StatusCode::SERVICE_UNAVAILABLE)))
            }
        };
        let how = if let Ok(Ok(release)) = released {
            release
        } else {
            tracing::info!(
                target: "genro_debug::audit",
                error_id = %envelope.short_id(),
                "held request released: no debugger released it within hold_timeout"
            );
            Release::Continue
        };
        if let Release::Status(status) = how {
            report.answer_with(status);
        }
    }

    /// The held requests, oldest first.
    pub(crate) fn list(&self) -> Vec<HeldSummary> {
        let held = self.lock();
        held.iter()
            .map(|e| {
                let (held_s, release_in_s) = self.times(e);
                HeldSummary {
                    request: crate::view::summary(&e.report.envelope),
                    status: e.report.status.as_u16(),
                    kind: e.report.kind.as_str().to_owned(),
                    error_type: e.report.error_type.to_owned(),
                    message: e.report.message.lines().next().unwrap_or("").to_owned(),
                    held_s,
                    release_in_s,
                }
            })
            .collect()
    }

    pub(crate) fn detail(&self, id: &str, masked: &[http::HeaderName]) -> Option<HeldDetail> {
        let held = self.lock();
        let e = &held[position(&held, id)?];
        let (held_s, release_in_s) = self.times(e);
        Some(HeldDetail {
            request: crate::view::detail(&e.report.envelope, masked),
            status: e.report.status.as_u16(),
            kind: e.report.kind.as_str().to_owned(),
            error_type: e.report.error_type.to_owned(),
            chain: e.report.chain.clone(),
            backtrace: e.report.backtrace.clone(),
            held_s,
            release_in_s,
        })
    }

    /// Whether the request whose short or internal id is `id` is held.
    pub(crate) fn is_held(&self, id: &str) -> bool {
        position(&self.lock(), id).is_some()
    }

    /// Releases the held request `id`; with `status`, it gets that status instead of its own.
    /// Returns its short id, or `None` when no such request is held.
    pub(crate) fn release(&self, id: &str, status: Option<StatusCode>) -> Option<String> {
        let mut held = self.lock();
        let index = position(&held, id)?;
        let entry = &mut held[index];
        let tx = entry.release.take()?;
        let _ = tx.send(status.map_or(Release::Continue, Release::Status));
        Some(entry.report.envelope.short_id().to_string())
    }

    fn times(&self, e: &Entry) -> (f64, f64) {
        let held = e.since.elapsed();
        (
            held.as_secs_f64(),
            self.inner.timeout.saturating_sub(held).as_secs_f64(),
        )
    }
}

/// Where the held request whose short or internal id is `id` is.
fn position(held: &[Entry], id: &str) -> Option<usize> {
    held.iter().position(|e| {
        let envelope = &e.report.envelope;
        envelope.short_id() == id || envelope.internal_id_string() == id
    })
}

struct Unhold<'a> {
    holds: &'a Holds,
    report: &'a Arc<ErrorReport>,
}

impl Drop for Unhold<'_> {
    fn drop(&mut self) {
        let mut held = self.holds.lock();
        held.retain(|e| !Arc::ptr_eq(&e.report, self.report));
        drop(held);
        self.holds.inner.held_now.dec();
        self.report.envelope.set_phase(Phase::Handling);
    }
}

impl fmt::Debug for Holds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Holds")
            .field("timeout", &self.inner.timeout)
            .field("max", &self.inner.max)
            .field("held", &self.len())
            .finish_non_exhaustive()
    }
}
