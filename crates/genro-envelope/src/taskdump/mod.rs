//! "What is this request waiting on?": the async stack of one in-flight request, from tokio's
//! task tracing.
//!
//! [`waiting_on`] asks the request's own future for its trace: the request's task is woken, and
//! its next poll runs in tokio's tracing mode (`Trace::capture`), rooted at the layer that made
//! the envelope. The answer is the chain of `async fn`s from that layer down to the tokio future
//! the request is parked on (a lock, a channel, a timer, a socket), innermost first, cut to a
//! bounded size. The watchdog puts it in its critical report, the debug console shows it on
//! `show ID --trace`, and the server's drain report gives it for each request it aborts.
//!
//! ```text
//!   tokio::sync::notify::Notified::poll_notified at tokio-1.54.1/src/sync/notify.rs:1026
//!   <tokio::sync::notify::Notified as core::future::future::Future>::poll at tokio-1.54.1/src/sync/notify.rs:1034
//!   my_app::load_account::{{closure}} at src/accounts.rs:88
//!   my_app::handler::{{closure}} at src/main.rs:41
//!   <axum::handler::…>::call::{{closure}} at axum-0.8.9/src/handler/mod.rs:217
//!   …
//!   <genro_errors::future::ResponseFuture as core::future::future::Future>::poll at …
//! ```
//!
//! # Why not a dump of the whole runtime
//!
//! tokio's `Handle::dump` pauses every worker and re-polls every task, and on a multi-thread
//! runtime with more than about 128 tasks queued its leader worker spins forever in
//! `steal_all` while the others wait at a barrier (tokio-rs/tokio#7478, reproduced here with
//! 1,000 requests in flight): one watchdog report would stop the server. A request's own trace
//! pauses nothing: it costs one poll of that request's future, on its own task, and the other
//! requests never notice. It also holds the request's frames only, not those of its connection.
//!
//! # Turning it on
//!
//! Tracing is an unstable tokio feature. It needs all of:
//! - the `taskdump` feature of this crate (or of `genro-server`, or `genro-asgi`);
//! - `RUSTFLAGS="--cfg tokio_unstable"` for the whole build (in `.cargo/config.toml`:
//!   `[build] rustflags = ["--cfg", "tokio_unstable"]`);
//! - Linux on x86_64, aarch64, x86 or s390x;
//! - symbols in the binary; for the names of inlined frames (a handler inlined into axum's
//!   `Handler::call`), `debug = "line-tables-only"` in the release profile, with
//!   `split-debuginfo` left `"off"`.
//!
//! Without them everything compiles and works, each answer is [`TraceUnavailable::NotBuilt`]
//! (whose message says which of the above is missing), and [`TracePoint`] is nothing at all: the
//! request path is the same as without this module. With them, a [`TracePoint`] costs a relaxed
//! load per poll and a waker registration per `Pending`.
//!
//! # Safety first
//!
//! A [`TaskDumper`]:
//! - never runs on the request path: the watchdog's task, a console session and the drain call
//!   it;
//! - takes one batch of traces at a time ([`TraceUnavailable::Busy`]), of at most
//!   [`MAX_TRACES_PER_DUMP`] requests (a mass stall of 10,000 costs 32 traces);
//! - takes at most one batch per `min_interval` (10 s by default); within it, it answers from the
//!   last batch (each trace says how old it is), and a request the last batch did not trace gets
//!   [`TraceUnavailable::RateLimited`];
//! - waits at most `timeout` for the traces and as long again to resolve their symbols (on a
//!   blocking thread), then answers [`TraceUnavailable::TimedOut`]: a request whose handler
//!   blocks its worker thread is never polled, and that answer is itself the diagnosis;
//! - catches a panic in the tracing ([`TraceUnavailable::Failed`]).
//!
//! What a trace can show: the `async fn`s down to the tokio future (timer, I/O, `sync`
//! primitive, channel, `JoinHandle`) the request is parked on. A future that parks without any
//! tokio leaf (a hand-written `poll` returning `Pending`, a non-tokio channel) shows as an empty
//! trace. Once the handler has answered and only the response body streams, there is no future
//! left to trace ([`TraceUnavailable::Finished`]).

// Used by tracing alone; its unit tests run in every build.
#[cfg_attr(not(genro_taskdump), allow(dead_code))]
mod render;

#[cfg(genro_taskdump)]
#[path = "tokio.rs"]
mod imp;
#[cfg(not(genro_taskdump))]
#[path = "off.rs"]
mod imp;
mod point;

pub use point::{TracePoint, Traced};
pub use render::{source_path, symbol_name};

use std::{
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use crate::RequestEnvelope;

/// Requests one call traces at most; the others get [`TraceUnavailable::Omitted`].
pub const MAX_TRACES_PER_DUMP: usize = 32;

/// Whether this build can trace requests (see the [module docs](self) to turn it on).
pub const AVAILABLE: bool = imp::AVAILABLE;

/// How often, how long and how much a [`TaskDumper`] may trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpLimits {
    /// The least time between two batches of traces; within it, answers come from the last.
    pub min_interval: Duration,
    /// The longest wait for the traces, and again for resolving their symbols.
    pub timeout: Duration,
    /// The most bytes of one trace; outer frames are cut first.
    pub max_bytes: usize,
}

impl Default for DumpLimits {
    /// One batch per 10 s at most, 2 s to take it, 8 KiB per trace.
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            max_bytes: 8 * 1024,
        }
    }
}

impl DumpLimits {
    /// These limits with another `min_interval`.
    #[must_use]
    pub const fn min_interval(mut self, min_interval: Duration) -> Self {
        self.min_interval = min_interval;
        self
    }

    /// These limits with another `timeout`.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These limits with another `max_bytes`.
    #[must_use]
    pub const fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

/// The async stack of one request's future, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTrace {
    text: String,
    age: Duration,
    cut: bool,
}

impl TaskTrace {
    /// The frames, one per line, innermost (what the request is parked on) first. Empty when it
    /// is parked on no tokio future.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How old the trace was when it was returned (within `min_interval`, answers come from the
    /// last batch).
    #[must_use]
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Whether outer frames were cut to fit `max_bytes` (the text then says how many).
    #[must_use]
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Display for TaskTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            f.write_str("(parked on no tokio future: nothing to trace)")
        } else {
            f.write_str(&self.text)
        }
    }
}

/// Why there is no trace. Its `Display` is a sentence for the report that goes out without one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceUnavailable {
    /// This build cannot trace; the message says what is missing.
    NotBuilt,
    /// Called outside a tokio runtime.
    NoRuntime,
    /// No [`TracePoint`] wraps the request's future: its envelope was not made by
    /// `EnvelopeLayer` or `GenroLayer`.
    Unwatched,
    /// The handler has answered (only the response body may still stream), or the request has
    /// ended.
    Finished,
    /// The last batch of traces is recent and did not trace this request; the next may be taken
    /// after this.
    RateLimited {
        /// Time until the next batch may be taken.
        retry_in: Duration,
    },
    /// Another batch of traces is being taken.
    Busy,
    /// The request's future was not polled within `timeout` (its handler may be blocking its
    /// worker thread), or its symbols took longer than that to resolve.
    TimedOut {
        /// The limit that passed.
        after: Duration,
    },
    /// The tracing or the symbol resolution panicked.
    Failed,
    /// The call asked for more traces than [`MAX_TRACES_PER_DUMP`].
    Omitted,
}

impl fmt::Display for TraceUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBuilt => f.write_str(imp::NOT_BUILT),
            Self::NoRuntime => f.write_str("no tokio runtime to trace on"),
            Self::Unwatched => f.write_str(
                "its future is not traceable: no EnvelopeLayer or GenroLayer made its envelope",
            ),
            Self::Finished => {
                f.write_str("its handler has answered (only the response body may still stream)")
            }
            Self::RateLimited { retry_in } => write!(
                f,
                "rate-limited: one batch of traces per min_interval; the next in {:.1}s",
                retry_in.as_secs_f64()
            ),
            Self::Busy => f.write_str("another batch of traces is being taken"),
            Self::TimedOut { after } => write!(
                f,
                "no trace within {:.1}s: its task was not polled (is its handler blocking its \
                 worker thread?)",
                after.as_secs_f64()
            ),
            Self::Failed => f.write_str("the tracing panicked"),
            Self::Omitted => write!(
                f,
                "only {MAX_TRACES_PER_DUMP} requests are traced per batch"
            ),
        }
    }
}

impl std::error::Error for TraceUnavailable {}

/// What a report prints for a trace, found or not: the trace, or `unavailable: <why>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceReport(pub Result<TaskTrace, TraceUnavailable>);

impl fmt::Display for TraceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(trace) => write!(f, "{trace}"),
            Err(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// Traces requests within [`DumpLimits`].
///
/// A process should use one, [`TaskDumper::global`]: the limits hold per dumper. Cloning shares
/// the dumper.
#[derive(Clone)]
pub struct TaskDumper {
    limits: Arc<Mutex<DumpLimits>>,
    gate: Arc<imp::Gate>,
}

impl fmt::Debug for TaskDumper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDumper")
            .field("available", &AVAILABLE)
            .field("limits", &self.limits())
            .finish_non_exhaustive()
    }
}

impl TaskDumper {
    /// A dumper with these limits, apart from the global one (for tests, or a second runtime).
    #[must_use]
    pub fn new(limits: DumpLimits) -> Self {
        Self {
            limits: Arc::new(Mutex::new(limits)),
            gate: Arc::default(),
        }
    }

    /// The process's dumper, with [`DumpLimits::default`] until [`set_limits`](Self::set_limits).
    /// The watchdog, the debug console and the server's drain use it.
    #[must_use]
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<TaskDumper> = OnceLock::new();
        GLOBAL.get_or_init(|| Self::new(DumpLimits::default()))
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> DumpLimits {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the limits; the next call uses them.
    pub fn set_limits(&self, limits: DumpLimits) {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    /// What `envelope`'s request is waiting on: the trace of its future's next poll (or the last
    /// batch's, within `min_interval`).
    ///
    /// # Errors
    ///
    /// Why there is none: see [`TraceUnavailable`].
    pub async fn waiting_on(
        &self,
        envelope: &RequestEnvelope,
    ) -> Result<TaskTrace, TraceUnavailable> {
        let mut traces = self.trace(vec![envelope]).await;
        traces.pop().unwrap_or(Err(TraceUnavailable::Finished))
    }

    /// The traces of several requests as one batch, in their order: what the watchdog asks for
    /// all the requests that turn critical in one scan.
    pub async fn waiting_on_all<'a>(
        &self,
        envelopes: impl IntoIterator<Item = &'a RequestEnvelope>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        self.trace(envelopes.into_iter().collect()).await
    }

    async fn trace(
        &self,
        envelopes: Vec<&RequestEnvelope>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        if envelopes.is_empty() {
            return Vec::new();
        }
        // A build without tracing answers `NotBuilt` from its own gate.
        self.gate.traces(self.limits(), envelopes).await
    }
}

/// What `envelope`'s request is waiting on, traced by [`TaskDumper::global`].
///
/// # Errors
///
/// Why there is none: see [`TraceUnavailable`]. In a build without task dumps, always
/// [`TraceUnavailable::NotBuilt`], whose message says how to turn them on.
pub async fn waiting_on(envelope: &RequestEnvelope) -> Result<TaskTrace, TraceUnavailable> {
    TaskDumper::global().waiting_on(envelope).await
}
