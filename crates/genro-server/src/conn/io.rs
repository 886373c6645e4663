//! The connection's bytes: a deadline on the first ones, before hyper's own timeouts can start;
//! and every write noted in the connection's [`Activity`], so that a client that stops reading
//! is seen (the socket stays full).

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use std::sync::Arc;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::Activity;

/// Bytes after which a connection is past its protocol preface (HTTP/2's is 24 bytes).
const PREFACE: usize = 24;

pin_project! {
    /// A connection that must send its first bytes (up to the HTTP/2 preface) before a
    /// deadline. hyper's header read timeout starts only once hyper-util's auto builder has seen
    /// enough bytes to pick a protocol, so a client that connects and stays silent, or trickles
    /// the first bytes, would otherwise hold a connection slot forever. The deadline is
    /// disarmed by the preface or the first response written.
    ///
    /// Its writes are noted in the connection's [`Activity`]: one that waits (the socket is
    /// full) marks the connection as having something to send, one that goes through is
    /// progress.
    pub(crate) struct DeadlineIo<T> {
        #[pin]
        inner: T,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        remaining: usize,
        activity: Arc<Activity>,
    }
}

impl<T> DeadlineIo<T> {
    pub(crate) fn new(inner: T, limit: Duration, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            remaining: PREFACE,
            activity,
        }
    }
}

impl<T: AsyncRead> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = buf.filled().len() - before;
                *this.remaining = this.remaining.saturating_sub(read);
                if *this.remaining == 0 {
                    *this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no request within the header read timeout",
                        )));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        *this.deadline = None;
        let written = this.inner.poll_write(cx, buf);
        this.activity.wrote(written.is_pending());
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flushed = this.inner.poll_flush(cx);
        // A flush that waits is a full socket; one that goes through is no progress by itself
        // (hyper flushes whenever it is polled).
        if flushed.is_pending() {
            this.activity.wrote(true);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        *this.deadline = None;
        let written = this.inner.poll_write_vectored(cx, bufs);
        this.activity.wrote(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
