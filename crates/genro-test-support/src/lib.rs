//! Test helpers shared by the genro-asgi crates. Not published; used as a dev-dependency.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use tracing_subscriber::fmt::MakeWriter;

/// A tracing writer that keeps everything written, so tests can read the logs.
#[derive(Clone, Default, Debug)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    #[must_use]
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// The lines that contain `needle`.
    #[must_use]
    pub fn lines(&self, needle: &str) -> Vec<String> {
        self.contents()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// A subscriber at DEBUG level writing here, without colours.
    #[must_use]
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(self.clone())
            .with_ansi(false)
            .finish()
    }

    /// Installs a subscriber for the current thread only, until the guard drops.
    #[must_use]
    pub fn scoped() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let guard = tracing::subscriber::set_default(logs.subscriber());
        (logs, guard)
    }

    /// The process-wide buffer: the first call installs a global subscriber writing to it.
    ///
    /// Prefer it when several tests of one binary log: with a single dispatcher, no event site's
    /// cached interest can race with another test installing its own subscriber. Find a test's
    /// lines by something unique to it, such as a request id.
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let logs = Self::default();
            tracing::subscriber::set_global_default(logs.subscriber())
                .expect("no other global subscriber in this test binary");
            logs
        })
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// The value of one series (`name{labels}`, written exactly as exported) in Prometheus or
/// OpenMetrics text, or `None` when the series is absent.
#[must_use]
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Runs `promtool check metrics` on `text`; returns its verdict and what it said.
///
/// # Panics
///
/// When promtool is not installed (Debian: prometheus; `scripts/test` installs it).
#[must_use]
pub fn promtool(text: &str) -> (bool, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian: prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

pub mod http;
pub mod process;
#[cfg(feature = "server")]
pub mod server;
mod wait;

pub use wait::{eventually, wait_for};

/// A registry's metrics in the Prometheus text format.
///
/// # Panics
///
/// When a metric cannot be written (never, for a registry of well-formed metrics).
#[must_use]
pub fn metrics_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("metrics encode");
    text
}

/// The error types the tests of every crate raise, written once.
pub mod errors {
    /// A missing order: a typical 404 handler's error.
    #[derive(Debug, thiserror::Error)]
    #[error("order {0} does not exist")]
    pub struct NotFound(pub u32);

    /// A missing field: a typical 422 handler's error.
    #[derive(Debug, thiserror::Error)]
    #[error("field {0} is required")]
    pub struct Invalid(pub &'static str);

    /// A version conflict: a typical 409 handler's error.
    #[derive(Debug, thiserror::Error)]
    #[error("version mismatch")]
    pub struct Conflict;

    /// A replica down: a typical 503 handler's error.
    #[derive(Debug, thiserror::Error)]
    #[error("replica down")]
    pub struct Unavailable;

    /// Too many requests: for handlers that build the whole response.
    #[derive(Debug, thiserror::Error)]
    #[error("slow down")]
    pub struct RateLimited;

    /// An error wrapping a [`NotFound`], to check that handlers look along the source chain.
    #[derive(Debug, thiserror::Error)]
    #[error("loading failed")]
    pub struct Wrapped(#[source] pub NotFound);

    /// A value standing for configuration that must never reach a client.
    pub const CANARY: &str = "canary-config-value-7f3a91";

    /// An internal error whose message holds a secret and a file path, neither of which may
    /// reach a client.
    #[derive(Debug, thiserror::Error)]
    #[error("connect failed with secret_key={CANARY} in /etc/app/server.ini")]
    pub struct Internal;
}
