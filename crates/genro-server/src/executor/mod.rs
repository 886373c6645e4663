//! Executors: a bounded pool for blocking work, and a pool of worker processes for CPU-bound or
//! crash-prone jobs. Both are part of the drain: it waits for their running jobs.
//!
//! The thread pool runs closures on tokio's blocking threads, at most `threads` at a time, with at
//! most `queue` more waiting; past that a call fails at once with [`ExecutorError::Full`] rather
//! than growing a queue without bound.
//!
//! The process pool re-executes the server's own binary in worker mode. The application lists
//! its jobs by name in a [`ProcessJobs`] and calls [`ProcessJobs::serve_if_worker`] first thing
//! in `main`; in a worker that call never returns: it reads jobs from stdin and writes results to
//! stdout, one JSON line each (serde_json). A worker that crashes fails its job with a clear
//! error and is replaced; `processes` workers run, with at most `process_queue` jobs waiting.

mod error;
mod process;
mod threads;

use std::sync::{Arc, OnceLock};

use serde::{de::DeserializeOwned, Serialize};

pub use error::ExecutorError;
pub use process::{ProcessJobs, ProcessPool, WORKER_ENV};
pub use threads::ThreadPool;

/// The server's executors: the thread pool, and the process pool once the server has started
/// it.
#[derive(Clone, Debug)]
pub struct Executors {
    threads: ThreadPool,
    processes: Arc<OnceLock<ProcessPool>>,
}

impl Executors {
    pub(crate) fn new(threads: ThreadPool) -> Self {
        Self {
            threads,
            processes: Arc::new(OnceLock::new()),
        }
    }

    pub(crate) fn set_processes(&self, pool: ProcessPool) {
        let _ = self.processes.set(pool);
    }

    /// Runs blocking work on the thread pool; see [`ThreadPool::run_in_executor`].
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::run_in_executor`].
    pub async fn run_in_executor<F, T>(&self, f: F) -> Result<T, ExecutorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.threads.run_in_executor(f).await
    }

    /// Runs a named job in a worker process; see [`ProcessPool::run_job`].
    ///
    /// # Errors
    ///
    /// As [`ProcessPool::run_job`], and [`ExecutorError::NoProcessPool`] when it is off.
    pub async fn run_job<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: &I,
    ) -> Result<O, ExecutorError> {
        match self.processes.get() {
            Some(pool) => pool.run_job(name, input).await,
            None => Err(ExecutorError::NoProcessPool),
        }
    }

    /// The thread pool.
    #[must_use]
    pub fn threads(&self) -> &ThreadPool {
        &self.threads
    }

    /// Waits until both pools are idle.
    pub(crate) async fn idle(&self) {
        self.threads.idle().await;
        if let Some(pool) = self.processes.get() {
            pool.idle().await;
        }
    }
}
