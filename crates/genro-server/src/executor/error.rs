//! Why a job did not produce its result.

use std::{fmt, time::Duration};

/// Why a job did not produce its result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The pool and its queue are full; try again later.
    Full,
    /// The server is shutting down and takes no new jobs.
    ShuttingDown,
    /// The job panicked; the message is the panic's.
    Panicked(String),
    /// The job returned an error.
    Failed(String),
    /// The worker process running the job exited or broke its pipe; it has been replaced.
    WorkerLost(String),
    /// No job of this name is registered.
    UnknownJob(String),
    /// The job ran past `job_timeout`; its worker was killed and replaced.
    TimedOut(Duration),
    /// The process pool is off (`[executors] processes = 0`).
    NoProcessPool,
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("executor full: every worker is busy and the queue is full"),
            Self::ShuttingDown => f.write_str("executor shutting down: no new jobs"),
            Self::Panicked(why) => write!(f, "job panicked: {why}"),
            Self::Failed(why) => write!(f, "job failed: {why}"),
            Self::WorkerLost(why) => write!(f, "worker process lost: {why}"),
            Self::UnknownJob(name) => write!(f, "no process job named {name:?} is registered"),
            Self::TimedOut(limit) => write!(f, "job timed out after {limit:?}"),
            Self::NoProcessPool => {
                f.write_str("the process pool is off: set [executors] processes to 1 or more")
            }
        }
    }
}

impl std::error::Error for ExecutorError {}

impl From<crate::slots::NoSlot> for ExecutorError {
    fn from(no: crate::slots::NoSlot) -> Self {
        match no {
            crate::slots::NoSlot::Full => Self::Full,
            crate::slots::NoSlot::Closed => Self::ShuttingDown,
        }
    }
}
