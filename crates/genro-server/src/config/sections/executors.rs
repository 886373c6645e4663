//! `[executors]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use super::server::per_cpu;
use crate::config::{
    resolver::Resolver,
    value::{COUNT, OPTIONAL_DURATION},
};

/// `[executors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutorsSection {
    /// Blocking closures run at once (`threads`); 0 means one per CPU.
    pub threads: usize,
    /// Blocking closures that may wait for a thread (`queue`); more are refused.
    pub queue: usize,
    /// Worker processes (`processes`); 0 turns the process pool off.
    pub processes: usize,
    /// Process jobs that may wait for a worker (`process_queue`).
    pub process_queue: usize,
    /// Longest a process job may run before its worker is killed (`job_timeout`, 0 for none).
    pub job_timeout: Option<Duration>,
}

impl Default for ExecutorsSection {
    fn default() -> Self {
        Self {
            threads: 0,
            queue: 64,
            processes: 0,
            process_queue: 64,
            job_timeout: None,
        }
    }
}

impl ExecutorsSection {
    /// The threads `threads` asks for: one per CPU for 0.
    #[must_use]
    pub fn pool_threads(&self) -> usize {
        per_cpu(self.threads)
    }

    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "executors";
        Self {
            threads: r.get(s, "threads", d.threads, &COUNT),
            queue: r.get(s, "queue", d.queue, &COUNT),
            processes: r.get(s, "processes", d.processes, &COUNT),
            process_queue: r.get(s, "process_queue", d.process_queue, &COUNT),
            job_timeout: r.get(s, "job_timeout", d.job_timeout, &OPTIONAL_DURATION),
        }
    }
}
