//! The cancel signal each envelope holds: what [`RequestEnvelope::cancel`] sets and a
//! [`CancelFuture`] waits on.
//!
//! [`RequestEnvelope::cancel`]: crate::RequestEnvelope::cancel
//! [`CancelFuture`]: crate::CancelFuture

use std::{
    sync::atomic::{AtomicBool, Ordering},
    task::Waker,
};

use atomic_waker::AtomicWaker;

/// The cancellation state of an envelope: a flag, and the waker of the request's
/// `CancelFuture` when one is waiting.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    cancelled: AtomicBool,
    waker: AtomicWaker,
}

impl Cancel {
    pub(crate) fn cancel(&self) -> bool {
        let first = !self.cancelled.swap(true, Ordering::AcqRel);
        self.waker.wake();
        first
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}
