//! The envelope's side of a request's trace, in a build with tracing: the waker of the request's
//! future and the question a dumper puts to it. Below both the envelope, which holds it, and the
//! `taskdump` module, which asks through it.

use std::sync::{
    atomic::{AtomicU8, Ordering},
    Mutex, PoisonError,
};

use atomic_waker::AtomicWaker;
use tokio::{runtime::dump::Trace, sync::oneshot};

/// A `TracePoint` polls the request's future.
const WATCHED: u8 = 1;
/// A dumper waits for a trace.
const ASKED: u8 = 2;
/// The future returned or was dropped: there is nothing left to trace.
const DONE: u8 = 4;

/// The trace of one poll; `None` when that poll panicked while traced.
pub(crate) type Reply = Option<Trace>;

/// Why a question cannot be put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No `TracePoint` wraps the request's future.
    Unwatched,
    /// The future returned or was dropped.
    Finished,
}

/// What a dumper and the request's `TracePoint` share.
#[derive(Debug, Default)]
pub(crate) struct Hook {
    state: AtomicU8,
    waker: AtomicWaker,
    reply: Mutex<Option<oneshot::Sender<Reply>>>,
}

impl Hook {
    /// Called once, when the future is wrapped.
    pub(crate) fn watch(&self) {
        self.state.store(WATCHED, Ordering::Relaxed);
    }

    /// The dumper's question: the request's task is woken, and its next poll answers.
    pub(crate) fn ask(&self) -> Result<oneshot::Receiver<Reply>, Refused> {
        let state = self.state.load(Ordering::Acquire);
        if state & WATCHED == 0 {
            return Err(Refused::Unwatched);
        }
        if state & DONE != 0 {
            return Err(Refused::Finished);
        }
        let (tx, rx) = oneshot::channel();
        *self.slot() = Some(tx);
        // A future that ended between the check and here saw no question: take it back.
        if self.state.fetch_or(ASKED, Ordering::AcqRel) & DONE != 0 {
            drop(self.slot().take());
            return Err(Refused::Finished);
        }
        self.waker.wake();
        Ok(rx)
    }

    /// Whether a dumper waits for a trace: one load per poll.
    #[inline]
    pub(crate) fn asked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & ASKED != 0
    }

    pub(crate) fn answer(&self, reply: Reply) {
        self.state.fetch_and(!ASKED, Ordering::AcqRel);
        if let Some(tx) = self.slot().take() {
            let _ = tx.send(reply);
        }
    }

    /// Where the request's task can be woken from.
    #[inline]
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// The future returned or was dropped; a dumper still waiting learns it at once.
    pub(crate) fn finish(&self) {
        if self.state.fetch_or(DONE, Ordering::AcqRel) & ASKED != 0 {
            drop(self.slot().take());
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<oneshot::Sender<Reply>>> {
        self.reply.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
