//! `[taskdump]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use crate::config::{
    resolver::Resolver,
    value::{DURATION, SIZE},
};

/// `[taskdump]`: the limits of the traces that say what a stuck request is waiting on (the
/// watchdog's critical report, the console's `show --trace`, the drain report). Traces are only
/// taken in a build with them (feature `taskdump` and `--cfg tokio_unstable`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskdumpSection {
    /// The least time between two batches of traces (`min_interval`); within it, answers come
    /// from the last.
    pub min_interval: Duration,
    /// The longest wait for the traces, and again for their symbols (`timeout`).
    pub timeout: Duration,
    /// The most bytes of one trace (`max_bytes`); outer frames are cut first.
    pub max_bytes: u64,
}

impl Default for TaskdumpSection {
    fn default() -> Self {
        let limits = genro_envelope::taskdump::DumpLimits::default();
        Self {
            min_interval: limits.min_interval,
            timeout: limits.timeout,
            max_bytes: limits.max_bytes as u64,
        }
    }
}

impl TaskdumpSection {
    /// The smallest `max_bytes`: room for a few frames and the note that says what was cut.
    const MIN_BYTES: u64 = 256;

    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "taskdump";
        let min_interval = r.get(s, "min_interval", d.min_interval, &DURATION);
        let (timeout, timeout_source) = r.read(s, "timeout", d.timeout, &DURATION);
        let (max_bytes, bytes_source) = r.read(s, "max_bytes", d.max_bytes, &SIZE);
        if timeout.is_zero() {
            r.problem(s, "timeout", timeout_source, "must be more than zero");
        }
        if max_bytes < Self::MIN_BYTES {
            r.problem(
                s,
                "max_bytes",
                bytes_source,
                format!("must be at least {} bytes", Self::MIN_BYTES),
            );
        }
        Self {
            min_interval,
            timeout,
            max_bytes,
        }
    }

    /// The limits of the process's [`TaskDumper`](genro_envelope::taskdump::TaskDumper).
    pub(crate) fn limits(&self) -> genro_envelope::taskdump::DumpLimits {
        genro_envelope::taskdump::DumpLimits::default()
            .min_interval(self.min_interval)
            .timeout(self.timeout)
            .max_bytes(usize::try_from(self.max_bytes).unwrap_or(usize::MAX))
    }
}
