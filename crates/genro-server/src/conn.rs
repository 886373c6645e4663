//! Connections: accepting within `max_connections`, a deadline on a connection's first bytes,
//! hyper-util's auto builder (HTTP/1.1 and HTTP/2 on one port, upgrades), and the per-request
//! adapter that gives each request its client address and tracing span.
//!
//! An error from `accept` that concerns one connection only (the client reset or gave up
//! before it was accepted) is skipped; any other (out of file descriptors or memory) is
//! counted, logged once per run of failures, and waited out a little rather than spun on.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use genro_envelope::{plumbing::truncated, ClientAddr};
use hyper::{body::Incoming, Request};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use pin_project_lite::pin_project;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::watch,
};
use tower::{Service, ServiceExt};
use tracing::Instrument;

use crate::{config::LimitsSection, slots::Slots, state::Lifecycle, tls::Tls};

/// Bytes after which a connection is past its protocol preface (HTTP/2's is 24 bytes).
const PREFACE: usize = 24;

pin_project! {
    /// A connection that must send its first bytes (up to the HTTP/2 preface) before a
    /// deadline. hyper's header read timeout starts only once hyper-util's auto builder has seen
    /// enough bytes to pick a protocol, so a client that connects and stays silent, or trickles
    /// the first bytes, would otherwise hold a connection slot forever. The deadline is
    /// disarmed by the preface or the first response written.
    pub(crate) struct DeadlineIo<T> {
        #[pin]
        inner: T,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        remaining: usize,
    }
}

impl<T> DeadlineIo<T> {
    pub(crate) fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            remaining: PREFACE,
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
        this.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
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
        this.inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The number of headers hyper accepts when no other limit is set.
const HYPER_MAX_HEADERS: usize = 100;

/// hyper's connection builder, set from `[limits]`.
fn builder(limits: &LimitsSection) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(
            usize::try_from(limits.max_header_size)
                .unwrap_or(usize::MAX)
                .max(8192),
        )
        .keep_alive(limits.keepalive);
    // hyper parses up to 100 headers in an inline array; any explicit limit makes it fill a
    // new array of that size on every request (measured: about 1,000 instructions), so the
    // default of 100 is left to hyper.
    if limits.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.keepalive_timeout))
        .keep_alive_timeout(limits.keepalive_timeout)
        .enable_connect_protocol();
    builder
}

/// The per-request adapter hyper calls: the client's address in the request, a span that
/// carries the request's ids on every log line written while it is handled, and one clone of
/// the application per request (as `axum::serve` does).
#[derive(Clone)]
pub(crate) struct PerRequest<A> {
    app: A,
    peer: SocketAddr,
}

impl<A, B> hyper::service::Service<Request<Incoming>> for PerRequest<A>
where
    A: Service<Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    A::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = A::Error;
    type Future = tracing::instrument::Instrumented<tower::util::Oneshot<A, Request<Incoming>>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        // The envelope reads the client from here (`Envelope::client()`). axum's `ConnectInfo`
        // is not set: one more extension per request for a value the envelope already has.
        req.extensions_mut().insert(ClientAddr(self.peer));
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %truncated(req.uri().path(), genro_notify::MAX_REPORTED_PATH),
            request_id = tracing::field::Empty,
            external_id = tracing::field::Empty,
        );
        self.app.clone().oneshot(req).instrument(span)
    }
}

/// The open connections, within `max_connections`, and the accept errors seen.
#[derive(Debug)]
pub(crate) struct Connections {
    slots: Slots,
    accept_errors: AtomicU64,
    /// Whether the last accept failed: the first failure of a run is logged, not every one.
    failing: AtomicBool,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            slots: Slots::new(max),
            accept_errors: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// How many connections are open.
    pub(crate) fn open(&self) -> usize {
        self.slots.in_use()
    }

    /// Accept errors other than a client's own (out of descriptors or memory) since the start.
    pub(crate) fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Waits until every connection has closed.
    pub(crate) async fn closed(&self) {
        self.slots.all_free().await;
    }

    fn accepted(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    fn accept_failed(&self, error: &io::Error) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %error,
                "accept failed: new connections wait until it succeeds again (counted in \
                 server_accept_errors_total; logged once per run of failures)"
            );
        }
    }
}

/// Whether an accept error concerns only the connection being accepted: the client went away
/// first. The listener itself is fine; the next accept goes on at once.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// What every connection of a listener is served with.
#[derive(Debug)]
pub(crate) struct Serving {
    builder: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    connections: Arc<Connections>,
}

impl Serving {
    pub(crate) fn new(limits: &LimitsSection, connections: Arc<Connections>) -> Self {
        Self {
            builder: builder(limits),
            header_read_timeout: limits.header_read_timeout,
            connections,
        }
    }
}

/// Accepts until the server starts draining, then drops the listener: new connections are
/// refused from that moment.
pub(crate) async fn accept_loop<A, B>(
    listener: TcpListener,
    app: A,
    serving: Arc<Serving>,
    tls: Option<(Arc<Tls>, Duration)>,
    mut lifecycle: watch::Receiver<Lifecycle>,
) where
    A: Service<Request<Incoming>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
    A::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let draining = |l: &Lifecycle| *l >= Lifecycle::Draining;
    let connections = &serving.connections;
    loop {
        let permit = tokio::select! {
            biased;
            _ = lifecycle.wait_for(draining) => return,
            permit = connections.slots.take() => match permit {
                Some(permit) => permit,
                None => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = lifecycle.wait_for(draining) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                connections.accepted();
                accepted
            }
            Err(e) if is_per_connection(&e) => {
                tracing::debug!(error = %e, "a client went away before its connection was accepted");
                continue;
            }
            Err(e) => {
                connections.accept_failed(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = PerRequest {
            app: app.clone(),
            peer,
        };
        let serving = serving.clone();
        let mut aborting = lifecycle.clone();
        let lifecycle = lifecycle.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let serve = async move {
                match tls {
                    None => serve_connection(stream, service, &serving, lifecycle).await,
                    Some((tls, limit)) => {
                        // A client that never finishes its handshake never holds a slot for long.
                        match tokio::time::timeout(limit, tls.acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                serve_connection(stream, service, &serving, lifecycle).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, %peer, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, ?limit, "TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                _ = aborting.wait_for(|l| *l >= Lifecycle::Aborting) => {}
            }
            drop(permit);
        });
    }
}

async fn serve_connection<I, A, B>(
    stream: I,
    service: PerRequest<A>,
    serving: &Serving,
    mut lifecycle: watch::Receiver<Lifecycle>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Service<Request<Incoming>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
    A::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(DeadlineIo::new(stream, serving.header_read_timeout));
    let conn = serving.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = lifecycle.changed() => {
                let now = changed.map_or(Lifecycle::Stopped, |()| *lifecycle.borrow());
                if now >= Lifecycle::Aborting {
                    // Past the drain deadline: the connection is dropped, and its requests with it.
                    return;
                }
                if now >= Lifecycle::Draining && !asked_to_close {
                    // HTTP/1: close after the response in progress; HTTP/2: GOAWAY.
                    conn.as_mut().graceful_shutdown();
                    asked_to_close = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gone_before_accept_is_skipped_and_running_out_of_descriptors_is_not() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(is_per_connection(&io::Error::from(kind)), "{kind:?}");
        }
        // EMFILE: the process is out of file descriptors.
        assert!(!is_per_connection(&io::Error::from_raw_os_error(24)));
        assert!(!is_per_connection(&io::Error::from(
            io::ErrorKind::OutOfMemory
        )));
    }

    #[test]
    fn accept_errors_are_counted_and_a_success_ends_the_run() {
        let connections = Connections::new(4);
        let emfile = io::Error::from_raw_os_error(24);
        connections.accept_failed(&emfile);
        connections.accept_failed(&emfile);
        assert_eq!(connections.accept_errors(), 2);
        assert!(connections.failing.load(Ordering::Relaxed));
        connections.accepted();
        assert!(!connections.failing.load(Ordering::Relaxed));
    }
}
