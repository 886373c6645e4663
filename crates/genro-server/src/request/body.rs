//! The request body as the server hands it to the application: hyper's, with the body read
//! timeout (`[limits] body_read_timeout`) on it.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use genro_errors::BoxError;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A request body as it arrives from the client, with a limit on how long it may go without a
/// new byte while the application reads it (`[limits] body_read_timeout`). A client that stalls
/// past the limit (a POST sent at a byte a minute) makes the read fail with
/// [`BodyReadTimeout`]; a handler that is not reading is never timed.
///
/// The timer is made the first time a read has to wait, so a request whose body is empty or
/// already received costs nothing more than hyper's own body.
pub struct IncomingBody {
    inner: hyper::body::Incoming,
    limit: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the wait in progress.
    armed: bool,
}

impl IncomingBody {
    pub(crate) fn new(inner: hyper::body::Incoming, limit: Option<Duration>) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// hyper's body, without the timeout.
    pub fn into_inner(self) -> hyper::body::Incoming {
        self.inner
    }
}

impl fmt::Debug for IncomingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingBody")
            .field("body_read_timeout", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The error of a request body that went longer than `body_read_timeout` without a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

impl fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the client sent nothing of the request body for {:?} (limits.body_read_timeout)",
            self.0
        )
    }
}

impl std::error::Error for BodyReadTimeout {}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(limit) = this.limit else {
                    return Poll::Pending;
                };
                let timer = match &mut this.timer {
                    // The wait in progress already runs on the timer.
                    Some(timer) if this.armed => timer,
                    Some(timer) => {
                        timer.as_mut().reset(Instant::now() + limit);
                        timer
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(Instant::now() + limit))),
                };
                this.armed = true;
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadTimeout(limit).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
