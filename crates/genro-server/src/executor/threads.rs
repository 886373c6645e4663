//! The bounded pool for blocking work: closures on tokio's blocking threads, at most `threads` at
//! a time, with at most `queue` more waiting; past that a call fails at once.

use std::{fmt, panic::AssertUnwindSafe};

use genro_errors::panic_message;

use super::error::ExecutorError;
use crate::slots::Slots;

/// The bounded pool for blocking work.
#[derive(Clone)]
pub struct ThreadPool {
    /// Running plus waiting: bounds the queue.
    slots: Slots,
    /// Running: bounds the parallelism.
    running: Slots,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("busy", &self.busy())
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// A pool running at most `threads` closures at once, with at most `queue` more waiting.
    #[must_use]
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        Self {
            slots: Slots::new(threads.saturating_add(queue)),
            running: Slots::new(threads),
        }
    }

    /// Runs `f` on a blocking thread and waits for its result.
    ///
    /// # Errors
    ///
    /// [`ExecutorError::Full`] when the pool and its queue are full; [`ExecutorError::Panicked`]
    /// when `f` panics (the pool goes on); [`ExecutorError::ShuttingDown`] after the drain.
    pub async fn run_in_executor<F, T>(&self, f: F) -> Result<T, ExecutorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.slots.try_take().map_err(ExecutorError::from)?;
        let running = self
            .running
            .take()
            .await
            .ok_or(ExecutorError::ShuttingDown)?;
        let result = tokio::task::spawn_blocking(move || {
            let _running = running;
            let _slot = slot;
            std::panic::catch_unwind(AssertUnwindSafe(f))
        })
        .await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(payload)) => Err(ExecutorError::Panicked(panic_message(&*payload))),
            Err(e) => Err(ExecutorError::Panicked(e.to_string())),
        }
    }

    /// Jobs running or waiting.
    #[must_use]
    pub fn busy(&self) -> usize {
        self.slots.in_use()
    }

    /// Waits until no job runs or waits.
    pub(crate) async fn idle(&self) {
        self.slots.all_free().await;
    }
}
