//! What one connection's requests are doing, counted as they go: the requests in progress
//! (until each response body ends), the requests that ended, and whether their responses are
//! moving. The request path only counts (no clock is read per request); the connection's task
//! reads these counts when it looks (`conn/look`), and decides from them whether the
//! connection is idle or stalled.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
};

/// What one connection is doing; shared by its task and its requests.
#[derive(Debug)]
pub(crate) struct Activity {
    /// The client: the envelopes of the connection's requests record it.
    pub(crate) peer: SocketAddr,
    /// Requests whose response has not ended.
    in_flight: AtomicUsize,
    /// Requests that ended.
    ended: AtomicU64,
    /// Response frames handed to hyper that it has not come back for: something to send.
    unsent: AtomicUsize,
    /// Changes with every poll of a response body and every write that went through: the
    /// responses' progress. Only compared between looks, so increments may race.
    progress: AtomicU64,
    /// Whether the last write to the socket had to wait: it is full, the client not reading.
    write_blocked: AtomicBool,
    /// The server drains: HTTP/1 responses ask the client to close the connection.
    closing: AtomicBool,
    /// The connection speaks HTTP/2 (set by its first request).
    http2: AtomicBool,
}

impl Activity {
    pub(crate) fn new(peer: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            peer,
            in_flight: AtomicUsize::new(0),
            ended: AtomicU64::new(0),
            unsent: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            http2: AtomicBool::new(false),
        })
    }

    #[inline]
    fn moved(&self) {
        // A plain load and store: only a change matters, so a lost increment does no harm.
        let progress = &self.progress;
        progress.store(
            progress.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// A write (or flush) to the socket went through, or had to wait.
    #[inline]
    pub(crate) fn wrote(&self, waited: bool) {
        if waited {
            self.write_blocked.store(true, Ordering::Relaxed);
        } else {
            self.moved();
            if self.write_blocked.load(Ordering::Relaxed) {
                self.write_blocked.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Response frames handed to hyper and not yet taken back: something waits to be sent.
    pub(crate) fn has_unsent(&self) -> bool {
        self.unsent.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Relaxed)
    }

    /// A number that changes whenever a response moves.
    pub(crate) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// The requests in progress.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The requests that ended. Read after [`in_flight`](Self::in_flight): a request is counted
    /// as ended before it stops counting as in progress.
    pub(crate) fn ended(&self) -> u64 {
        self.ended.load(Ordering::Acquire)
    }

    /// Whether the connection speaks HTTP/2.
    pub(crate) fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// The connection speaks HTTP/2 (its first request says so).
    pub(crate) fn speaks_http2(&self) {
        self.http2.store(true, Ordering::Relaxed);
    }

    /// Whether HTTP/1 responses ask the client to close the connection (the server drains).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// From now on, each HTTP/1 response carries `connection: close`: a kept-alive client sends
    /// its next request on a new connection instead of racing the server's close.
    pub(crate) fn close_after_responses(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Whether a request is in progress.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// A request starts: it counts as in progress until the value returned is dropped.
    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            activity: self.clone(),
            unsent: false,
        }
    }
}

/// One request in progress on the connection, until its response body ends (or the request is
/// dropped unanswered).
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) activity: Arc<Activity>,
    /// Whether this response's last frame is still waiting to be sent.
    unsent: bool,
}

impl InFlight {
    /// The response body is being polled again: its last frame went out.
    #[inline]
    pub(crate) fn polled(&mut self) {
        self.activity.moved();
        if std::mem::take(&mut self.unsent) {
            self.activity.unsent.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A frame was handed to hyper to send.
    pub(crate) fn handed_over(&mut self) {
        self.unsent = true;
        self.activity.unsent.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        if self.unsent {
            activity.unsent.fetch_sub(1, Ordering::AcqRel);
        }
        // Counted as ended before it stops counting as in progress, so that a look that sees
        // none in progress also sees this end.
        activity.ended.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
