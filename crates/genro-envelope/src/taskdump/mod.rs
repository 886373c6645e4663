//! "What is this request waiting on?": the async stack of one in-flight request, from a tokio
//! task dump.
//!
//! Every [`RequestEnvelope`] records the id of the tokio task that serves it
//! ([`RequestEnvelope::task_id`]). [`waiting_on`] takes one dump of the runtime
//! (tokio's `Handle::dump`) and returns the trace of that task alone: the chain of
//! `async fn`s from the task's root to the tokio future it is parked on (a lock, a channel, a
//! timer, a socket), innermost first. The watchdog puts it in its critical report, the debug
//! console shows it on `show ID --trace`, and the server's drain report gives it for each
//! request it aborts.
//!
//! ```text
//!   tokio::sync::notify::NotifiedProject::poll_notified at tokio-1.54.1/src/sync/notify.rs:1228
//!   tokio::sync::notify::Notified::poll_notified at tokio-1.54.1/src/sync/notify.rs:1026
//!   <tokio::sync::notify::Notified as core::future::future::Future>::poll at tokio-1.54.1/src/sync/notify.rs:1034
//!   my_app::load_account::{{closure}} at src/accounts.rs:88
//!   my_app::handler::{{closure}} at src/main.rs:41
//!   …
//! ```
//!
//! # Turning it on
//!
//! Task dumps are an unstable tokio feature. They need all of:
//! - the `taskdump` feature of this crate (or of `genro-server`, or `genro-asgi`);
//! - `RUSTFLAGS="--cfg tokio_unstable"` for the whole build (in `.cargo/config.toml`:
//!   `[build] rustflags = ["--cfg", "tokio_unstable"]`);
//! - Linux on x86_64, aarch64, x86 or s390x;
//! - symbols in the binary: a release build keeps them unless stripped; `debug =
//!   "line-tables-only"` in the release profile adds file and line, and `split-debuginfo`
//!   must stay `"off"`.
//!
//! Without them everything compiles and works, and each answer is
//! [`TraceUnavailable::NotBuilt`], whose message says which of the above is missing. The
//! request path is the same either way: the envelope reads the task id from a thread-local.
//!
//! # Safety first
//!
//! A dump pauses every worker of the runtime while it re-polls every task in a tracing mode, so
//! a [`TaskDumper`]:
//! - is never called on the request path: the watchdog's task, a console session and the drain
//!   call it;
//! - takes at most one dump at a time ([`TraceUnavailable::Busy`]);
//! - takes at most one dump per `min_interval` (10 s by default). Within that interval it answers
//!   from the last dump (each trace says how old it is), and a request that the last dump does
//!   not hold gets [`TraceUnavailable::RateLimited`];
//! - first checks that no worker is stuck in one poll (blocking code): tokio's dump waits for
//!   every worker, and while one is blocked the others would stall in 250 ms pauses. It then
//!   answers [`TraceUnavailable::WorkerBlocked`], which is itself the answer to "why is it
//!   stuck";
//! - waits at most `timeout` for the dump and as long again to resolve the symbols, then answers
//!   [`TraceUnavailable::TimedOut`] (the caller's report goes out without the trace; a dump
//!   still running keeps the next one from starting);
//! - catches a panic inside the dump or the symbol resolution
//!   ([`TraceUnavailable::Failed`]);
//! - resolves at most [`MAX_TRACES_PER_DUMP`] traces per call, so a mass stall (10,000 stuck
//!   requests in one watchdog scan) costs one dump and 32 traces.
//!
//! What a trace can show: the `async fn`s down to the tokio future (timer, I/O, `sync`
//! primitive, channel, `JoinHandle`) the task last parked on. A future that parks without any
//! tokio leaf (a hand-written `poll` returning `Pending`, a non-tokio channel) shows as an
//! empty trace. A request whose handler blocks a worker thread cannot be traced at all: that is
//! [`TraceUnavailable::WorkerBlocked`].

// Used by task dumps alone; its unit tests run in every build.
#[cfg_attr(
    not(all(tokio_unstable, feature = "taskdump", target_os = "linux")),
    allow(dead_code)
)]
mod render;

#[cfg(all(
    tokio_unstable,
    feature = "taskdump",
    target_os = "linux",
    any(
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "s390x"
    )
))]
#[path = "tokio.rs"]
mod imp;

#[cfg(not(all(
    tokio_unstable,
    feature = "taskdump",
    target_os = "linux",
    any(
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "s390x"
    )
)))]
#[path = "off.rs"]
mod imp;

use std::{
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use crate::RequestEnvelope;

/// Traces one call resolves at most; the others get [`TraceUnavailable::Omitted`].
pub const MAX_TRACES_PER_DUMP: usize = 32;

/// Whether this build can take task dumps (see the [module docs](self) to turn them on).
pub const AVAILABLE: bool = imp::AVAILABLE;

/// How often, how long and how much a [`TaskDumper`] may dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpLimits {
    /// The least time between two dumps; within it, answers come from the last dump.
    pub min_interval: Duration,
    /// The longest wait for a dump, and again for resolving its symbols.
    pub timeout: Duration,
    /// The most bytes of one trace; outer frames are cut first.
    pub max_bytes: usize,
}

impl Default for DumpLimits {
    /// One dump per 10 s at most, 2 s to take it, 8 KiB per trace.
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

/// The async stack of one request's task, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTrace {
    text: String,
    age: Duration,
    cut: bool,
}

impl TaskTrace {
    /// The frames, one per line, innermost (what the task is parked on) first. Empty when the
    /// task is parked on no tokio future.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How old the dump it comes from was when the trace was returned.
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
    /// This build cannot take task dumps; the message says what is missing.
    NotBuilt,
    /// The request was not served by a tokio task.
    NoTask,
    /// Called outside a tokio runtime.
    NoRuntime,
    /// The dump does not hold the request's task: the request has ended, or runs on another
    /// runtime.
    NotFound,
    /// The last dump is recent and does not hold the request; the next may be taken after this.
    RateLimited {
        /// Time until the next dump may be taken.
        retry_in: Duration,
    },
    /// A dump is already being taken (perhaps one that timed out and is still running).
    Busy,
    /// A runtime worker has been busy in one poll for over a quarter of a second: blocking code
    /// on the runtime. A dump would stall every other worker, so none is taken.
    WorkerBlocked {
        /// The worker's index.
        worker: usize,
    },
    /// The dump or the symbol resolution took longer than `timeout`.
    TimedOut {
        /// The limit that passed.
        after: Duration,
    },
    /// The dump or the symbol resolution panicked.
    Failed,
    /// The call asked for more traces than [`MAX_TRACES_PER_DUMP`].
    Omitted,
}

impl fmt::Display for TraceUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBuilt => f.write_str(imp::NOT_BUILT),
            Self::NoTask => f.write_str("the request is not served by a tokio task"),
            Self::NoRuntime => f.write_str("no tokio runtime to dump"),
            Self::NotFound => f.write_str(
                "its task is not in the dump: the request has ended, or runs on another runtime",
            ),
            Self::RateLimited { retry_in } => write!(
                f,
                "rate-limited: one task dump per min_interval; the next in {:.1}s",
                retry_in.as_secs_f64()
            ),
            Self::Busy => f.write_str("another task dump is still being taken"),
            Self::WorkerBlocked { worker } => write!(
                f,
                "runtime worker {worker} has been in one poll for over 250 ms (blocking code on \
                 the runtime?); no dump taken, since it would stall every other worker"
            ),
            Self::TimedOut { after } => write!(
                f,
                "the task dump did not finish within {:.1}s",
                after.as_secs_f64()
            ),
            Self::Failed => f.write_str("the task dump panicked"),
            Self::Omitted => write!(f, "only {MAX_TRACES_PER_DUMP} traces are resolved per dump"),
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

/// Takes task dumps within [`DumpLimits`], and finds requests' tasks in them.
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

    /// The trace of the task serving `envelope`'s request, from one dump (or the last one, within
    /// `min_interval`).
    ///
    /// # Errors
    ///
    /// Why there is none: see [`TraceUnavailable`].
    pub async fn waiting_on(
        &self,
        envelope: &RequestEnvelope,
    ) -> Result<TaskTrace, TraceUnavailable> {
        let mut traces = self.trace_tasks(vec![task_of(envelope)]).await;
        traces.pop().unwrap_or(Err(TraceUnavailable::NotFound))
    }

    /// The traces of several requests from one dump, in their order: what the watchdog asks for
    /// all the requests that turn critical in one scan.
    pub async fn waiting_on_all<'a>(
        &self,
        envelopes: impl IntoIterator<Item = &'a RequestEnvelope>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        let tasks = envelopes.into_iter().map(task_of).collect();
        self.trace_tasks(tasks).await
    }

    async fn trace_tasks(
        &self,
        tasks: Vec<(Option<tokio::task::Id>, tokio::time::Instant)>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        if !AVAILABLE {
            return vec![Err(TraceUnavailable::NotBuilt); tasks.len()];
        }
        if tasks.iter().all(|(task, _)| task.is_none()) {
            return vec![Err(TraceUnavailable::NoTask); tasks.len()];
        }
        self.gate.traces(self.limits(), tasks).await
    }
}

/// What a dump is searched for: the request's task, and when the request started.
fn task_of(envelope: &RequestEnvelope) -> (Option<tokio::task::Id>, tokio::time::Instant) {
    (envelope.task_id(), envelope.started())
}

/// The trace of the task serving `envelope`'s request, taken by [`TaskDumper::global`].
///
/// # Errors
///
/// Why there is none: see [`TraceUnavailable`]. In a build without task dumps, always
/// [`TraceUnavailable::NotBuilt`], whose message says how to turn them on.
pub async fn waiting_on(envelope: &RequestEnvelope) -> Result<TaskTrace, TraceUnavailable> {
    TaskDumper::global().waiting_on(envelope).await
}
