//! Connections: accepting within `max_connections`, a deadline on a connection's first bytes,
//! hyper-util's auto builder (HTTP/1.1 and HTTP/2 on one port, upgrades), and the per-request
//! adapter that gives each request its client address and tracing span.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
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
    sync::{watch, Semaphore},
};
use tower::{Service, ServiceExt};
use tracing::Instrument;

use crate::{config::LimitsSection, server::Lifecycle, tls::Tls};

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
pub(crate) fn builder(limits: &LimitsSection) -> auto::Builder<TokioExecutor> {
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

/// The open connections, within `max_connections`.
#[derive(Debug)]
pub(crate) struct Connections {
    slots: Arc<Semaphore>,
    max: u32,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Self {
        let max = u32::try_from(max.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Self {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// How many connections are open.
    pub(crate) fn open(&self) -> usize {
        self.max as usize - self.slots.available_permits()
    }

    /// Waits until every connection has closed.
    pub(crate) async fn closed(&self) {
        let _ = self.slots.acquire_many(self.max).await;
    }
}

/// Accepts until the server starts draining, then drops the listener: new connections are
/// refused from that moment.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn accept_loop<A, B>(
    listener: TcpListener,
    app: A,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<LimitsSection>,
    connections: Arc<Connections>,
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
    loop {
        let permit = tokio::select! {
            biased;
            _ = lifecycle.wait_for(draining) => return,
            permit = connections.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = lifecycle.wait_for(draining) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = PerRequest {
            app: app.clone(),
            peer,
        };
        let builder = builder.clone();
        let mut aborting = lifecycle.clone();
        let lifecycle = lifecycle.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let serve = async move {
                match tls {
                    None => serve_connection(stream, service, &builder, &limits, lifecycle).await,
                    Some((tls, limit)) => {
                        // A client that never finishes its handshake never holds a slot for long.
                        match tokio::time::timeout(limit, tls.acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                serve_connection(stream, service, &builder, &limits, lifecycle)
                                    .await;
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
    builder: &auto::Builder<TokioExecutor>,
    limits: &LimitsSection,
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
    let io = TokioIo::new(DeadlineIo::new(stream, limits.header_read_timeout));
    let conn = builder.serve_connection_with_upgrades(io, service);
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
