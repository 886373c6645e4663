//! Connections: accepting within a budget of connections per port, hyper-util's auto builder (HTTP/1.1 and HTTP/2 on one port,
//! upgrades), and the bounds on what a connection may do with its slot once accepted: the
//! first request and the time between requests, a response that stops moving, a TLS handshake
//! (which the drain also ends at once).
//!
//! An error from `accept` that concerns one connection only (the client reset or gave up
//! before it was accepted) is skipped; any other (out of file descriptors or memory) is
//! counted, logged once per run of failures, and waited out a little rather than spun on.
//!
//! The files below this one: `io` (the writes watched), `look` (what the connection's task
//! decides from its requests' activity, which the request path counts) and `gate` (the connection's timer and the
//! lifecycle, polled only when they wake the task).

mod gate;
mod io;
mod look;

use std::{
    future::Future,
    io as stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use genro_errors::BoxError;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    runtime,
    sync::watch,
    time::Instant,
};

use self::{
    gate::Gate,
    io::WatchedIo,
    look::{Looked, Next, Timeouts},
};
use crate::{
    config::LimitsSection,
    request::{
        activity::Activity,
        adapter::{PerRequest, PortService},
    },
    slots::{Slot, Slots},
    state::Lifecycle,
    tls::Tls,
};

/// The connections the metrics export port (and, later, the debug port) may hold at once, apart
/// from the main port's `max_connections`: a scrape is answered while the main port is full.
pub(crate) const MONITORING_CONNECTIONS: usize = 16;

/// How long a connection asked to close because it is idle has to do so before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long an idle connection stays open once the drain begins: a request the client has
/// already sent (on a connection just accepted, or kept alive) is answered, with `connection:
/// close`, instead of meeting a closed socket. A connection busy with a request is asked to
/// close at once (after its response on HTTP/1, GOAWAY on HTTP/2).
const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(500);

/// The number of headers hyper accepts when no other limit is set.
const HYPER_MAX_HEADERS: usize = 100;

/// hyper's connection builder, set from `[limits]`.
fn builder(limits: &LimitsSection) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    // The header read timeout is the connection task's (see `activity`): one timer per
    // connection rather than hyper's, which boxes and arms a timer for every request head.
    http1
        .header_read_timeout(None)
        .max_buf_size(
            usize::try_from(limits.max_header_size)
                .unwrap_or(usize::MAX)
                .max(8192),
        )
        .keep_alive(limits.keepalive)
        // A response's head and body go out in one `write` from hyper's buffer rather than
        // one `writev` of several pieces: for the small responses most requests get, about 5%
        // less server CPU per request (benches/loopback.sh), at the price of copying a large
        // body's chunks into that buffer once more (the kernel copies them either way).
        .writev(false);
    // hyper parses up to 100 headers in an inline array; any explicit limit makes it fill a
    // new array of that size on every request, so the
    // default of 100 is left to hyper.
    if limits.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .enable_connect_protocol();
    // Pings find a peer that is gone; they do not keep an idle connection open (the idle
    // timeout counts requests, not pings).
    if let Some(every) = limits.keepalive_timeout {
        http2.keep_alive_interval(every).keep_alive_timeout(every);
    }
    builder
}

/// What a served response's body must be for hyper.
pub(crate) trait ResponseBody:
    http_body::Body<Data = bytes::Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// The open connections of every port, and the accept errors seen.
#[derive(Debug)]
pub(crate) struct Connections {
    /// One slot per open connection, without a bound (each port bounds its own): the count,
    /// and the wait until every connection has closed.
    open: Slots,
    accept_errors: AtomicU64,
    /// Whether the last accept failed: the first failure of a run is logged, not every one.
    failing: AtomicBool,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            open: Slots::new(usize::MAX),
            accept_errors: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }
}

impl Connections {
    /// How many connections are open (accepted and not yet closed).
    pub(crate) fn open(&self) -> usize {
        self.open.in_use()
    }

    /// Accept errors other than a client's own (out of descriptors or memory) since the start.
    pub(crate) fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Waits until no connection is open.
    pub(crate) async fn closed(&self) {
        self.open.all_free().await;
    }

    /// A connection accepted with `slot` of its port: counted until the returned slots drop.
    fn accepted(&self, slot: Slot) -> (Slot, Slot) {
        self.failing.store(false, Ordering::Relaxed);
        let counted = self
            .open
            .try_take()
            .expect("the count of open connections has no bound");
        (counted, slot)
    }

    fn accept_failed(&self, error: &stdio::Error) {
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
fn is_per_connection(error: &stdio::Error) -> bool {
    matches!(
        error.kind(),
        stdio::ErrorKind::ConnectionAborted
            | stdio::ErrorKind::ConnectionReset
            | stdio::ErrorKind::ConnectionRefused
            | stdio::ErrorKind::Interrupted
    )
}

/// Where a port's connections run: on the runtime that accepts them, or, with
/// `[server] runtime = per_core` and more than one worker, on it and on the other workers'
/// single-threaded runtimes in turn. A connection stays where it starts, with every task it
/// spawns (hyper's HTTP/2 streams among them).
#[derive(Debug, Default)]
pub(crate) struct Spread {
    others: Vec<runtime::Handle>,
    next: AtomicUsize,
}

impl Spread {
    /// Connections taken in turn by the accepting runtime and `others`.
    pub(crate) fn new(others: Vec<runtime::Handle>) -> Self {
        Self {
            others,
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `task` on the next runtime in turn.
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if !self.others.is_empty() {
            let turn = self.next.fetch_add(1, Ordering::Relaxed) % (self.others.len() + 1);
            if let Some(other) = turn.checked_sub(1).and_then(|i| self.others.get(i)) {
                drop(other.spawn(task));
                return;
            }
        }
        drop(tokio::spawn(task));
    }
}

/// What every connection of a listener is served with.
#[derive(Debug)]
pub(crate) struct Port {
    builder: auto::Builder<TokioExecutor>,
    timeouts: Timeouts,
    /// The port's budget of connections.
    slots: Slots,
    connections: Arc<Connections>,
    spread: Spread,
}

impl Port {
    /// Port with `limits`, at most `max` connections at once on this port.
    pub(crate) fn new(limits: &LimitsSection, max: usize, connections: Arc<Connections>) -> Self {
        Self {
            builder: builder(limits),
            timeouts: Timeouts {
                header_read: limits.header_read_timeout,
                idle: limits.idle_timeout,
                write: limits.write_timeout,
                body_read: limits.body_read_timeout,
            },
            slots: Slots::new(max),
            connections,
            spread: Spread::default(),
        }
    }

    /// Connections spread over these runtimes too (see [`Spread`]).
    pub(crate) fn spread(mut self, spread: Spread) -> Self {
        self.spread = spread;
        self
    }
}

/// Accepts until the server starts draining, then drops the listener: new connections are
/// refused from that moment.
pub(crate) async fn accept_loop<A, B>(
    listener: TcpListener,
    app: A,
    port: Arc<Port>,
    tls: Option<(Arc<Tls>, Duration)>,
    mut lifecycle: watch::Receiver<Lifecycle>,
) where
    A: PortService<B>,
    B: ResponseBody,
{
    let draining = |l: &Lifecycle| *l >= Lifecycle::Draining;
    let connections = &port.connections;
    loop {
        let slot = tokio::select! {
            biased;
            _ = lifecycle.wait_for(draining) => return,
            slot = port.slots.take() => match slot {
                Some(slot) => slot,
                None => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = lifecycle.wait_for(draining) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
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
        let open = connections.accepted(slot);
        let _ = stream.set_nodelay(true);
        let service = PerRequest {
            app: app.clone(),
            activity: Activity::new(peer),
            body_read_timeout: port.timeouts.body_read,
        };
        port.spread.spawn(connection(
            stream,
            service,
            port.clone(),
            tls.clone(),
            lifecycle.clone(),
            open,
        ));
    }
}

/// One connection, from its TLS handshake (if any) to its end; past the drain deadline it is
/// dropped with whatever it still serves.
async fn connection<A, B>(
    stream: TcpStream,
    service: PerRequest<A>,
    port: Arc<Port>,
    tls: Option<(Arc<Tls>, Duration)>,
    lifecycle: watch::Receiver<Lifecycle>,
    // Held until the connection ends: its slots in the port's and the server's counts.
    _open: (Slot, Slot),
) where
    A: PortService<B>,
    B: ResponseBody,
{
    // Past the drain's deadline, `serve_connection` returns at once (it looks at the lifecycle
    // when it changes), dropping whatever the connection still serves.
    let Some((tls, limit)) = tls else {
        return serve_connection(stream, service, &port, lifecycle).await;
    };
    let peer = service.activity.peer;
    // A client that never finishes its handshake never holds a slot for long, and a drain
    // does not wait for one at all: nothing has been asked on the connection yet.
    let mut draining = lifecycle.clone();
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(limit, tls.accept(stream)) => handshake,
        _ = draining.wait_for(|l| *l >= Lifecycle::Draining) => {
            tracing::debug!(%peer, "TLS handshake ended by the drain");
            return;
        }
    };
    match handshake {
        Ok(Ok(stream)) => serve_connection(stream, service, &port, lifecycle).await,
        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, ?limit, "TLS handshake timed out"),
    }
}

async fn serve_connection<I, A, B>(
    stream: I,
    service: PerRequest<A>,
    port: &Port,
    mut lifecycle: watch::Receiver<Lifecycle>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: PortService<B>,
    B: ResponseBody,
{
    let mut task = ConnTask::new(service.activity.clone(), &port.timeouts);
    let io = TokioIo::new(WatchedIo::new(stream, task.activity.clone()));
    let conn = port.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // One timer per connection, moved forward as the connection lives: the next look at
    // whether it is idle or stalled. The first look is now; it sets the next.
    let look = tokio::time::sleep_until(Instant::now());
    tokio::pin!(look);
    // The lifecycle and the timer are polled only when one of them woke the task.
    let gate = Gate::new();
    loop {
        let control = gate.pass(async {
            tokio::select! {
                biased;
                changed = lifecycle.changed() => Control::Lifecycle(changed.is_ok()),
                () = look.as_mut() => Control::Look,
            }
        });
        let control = tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            control = control => control,
        };
        let step = match control {
            Control::Lifecycle(open) => {
                let now = if open {
                    *lifecycle.borrow()
                } else {
                    Lifecycle::Stopped
                };
                task.on_lifecycle(now)
                    .map(|step| step.sooner_than(look.deadline()))
            }
            Control::Look => task.on_look(Instant::now()),
        };
        // `None`: the connection is dropped, and whatever it still serves with it.
        let Some(step) = step else { return };
        if step.close {
            conn.as_mut().graceful_shutdown();
        }
        if let Some(at) = step.look_at {
            look.as_mut().reset(at);
        }
    }
}

/// What a connection's task does after a wake-up, unless it drops the connection.
struct Step {
    /// Ask the connection to close (HTTP/1: after the response in progress; HTTP/2: GOAWAY).
    close: bool,
    /// Move the timer to this instant.
    look_at: Option<Instant>,
}

impl Step {
    /// The timer moved only if `at` comes before `deadline`.
    fn sooner_than(mut self, deadline: Instant) -> Self {
        self.look_at = self.look_at.filter(|&at| at < deadline);
        self
    }
}

/// A connection's task between its wake-ups: one method for each thing that wakes it other
/// than the connection itself.
struct ConnTask<'a> {
    activity: Arc<Activity>,
    timeouts: &'a Timeouts,
    looked: Looked,
    asked_to_close: bool,
    /// When the connection was asked to close for being idle.
    closing_idle: Option<Instant>,
    /// When the drain closes it, if it is still idle then.
    drain_close_at: Option<Instant>,
}

impl<'a> ConnTask<'a> {
    fn new(activity: Arc<Activity>, timeouts: &'a Timeouts) -> Self {
        Self {
            activity,
            timeouts,
            looked: Looked::new(Instant::now()),
            asked_to_close: false,
            closing_idle: None,
            drain_close_at: None,
        }
    }

    /// Asks the connection to close, once.
    fn close_once(&mut self) -> bool {
        !std::mem::replace(&mut self.asked_to_close, true)
    }

    /// The server's lifecycle changed to `now`: past the drain deadline the connection is
    /// dropped; when the drain begins, a busy connection is asked to close and an idle one
    /// closes after [`DRAIN_IDLE_GRACE`].
    fn on_lifecycle(&mut self, now: Lifecycle) -> Option<Step> {
        if now >= Lifecycle::Aborting {
            return None;
        }
        let mut step = Step {
            close: false,
            look_at: None,
        };
        if now >= Lifecycle::Draining && self.drain_close_at.is_none() && !self.asked_to_close {
            self.activity.close_after_responses();
            if self.activity.busy() {
                step.close = self.close_once();
            } else {
                let at = Instant::now() + DRAIN_IDLE_GRACE;
                self.drain_close_at = Some(at);
                step.look_at = Some(at);
            }
        }
        Some(step)
    }

    /// The timer fired at `now`: the drain's close of an idle connection, a stalled response,
    /// or an idle connection (asked to close, then dropped if it does not).
    fn on_look(&mut self, now: Instant) -> Option<Step> {
        let peer = self.activity.peer;
        let mut close = false;
        if self.drain_close_at.is_some_and(|at| now >= at) {
            self.drain_close_at = None;
            close = self.close_once();
        }
        let next = match self.looked.next(&self.activity, now, self.timeouts) {
            Next::CheckAt(at) => at,
            Next::Stalled => {
                tracing::debug!(%peer, write_timeout = ?self.timeouts.write, "connection closed: the client stopped reading its response");
                return None;
            }
            Next::Idle
                if self
                    .closing_idle
                    .is_some_and(|asked| now >= asked + CLOSE_GRACE) =>
            {
                // Asked to close and did not: nothing is in progress, drop it.
                tracing::debug!(%peer, "connection dropped: idle, and it did not close when asked");
                return None;
            }
            Next::Idle => {
                let asked = *self.closing_idle.get_or_insert_with(|| {
                    tracing::debug!(%peer, "connection closed: idle");
                    now
                });
                close |= self.close_once();
                asked + CLOSE_GRACE
            }
        };
        Some(Step {
            close,
            look_at: Some(self.drain_close_at.map_or(next, |at| at.min(next))),
        })
    }
}

/// What woke a connection's task other than the connection itself.
enum Control {
    /// The server's lifecycle changed (false: the server is gone).
    Lifecycle(bool),
    /// The connection's timer: time to look at what it is doing.
    Look,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gone_before_accept_is_skipped_and_running_out_of_descriptors_is_not() {
        for kind in [
            stdio::ErrorKind::ConnectionAborted,
            stdio::ErrorKind::ConnectionReset,
        ] {
            assert!(is_per_connection(&stdio::Error::from(kind)), "{kind:?}");
        }
        // EMFILE: the process is out of file descriptors.
        assert!(!is_per_connection(&stdio::Error::from_raw_os_error(24)));
        assert!(!is_per_connection(&stdio::Error::from(
            stdio::ErrorKind::OutOfMemory
        )));
    }

    #[tokio::test]
    async fn accept_errors_are_counted_a_success_ends_the_run_and_only_connections_count() {
        let connections = Arc::new(Connections::default());
        let slots = Slots::new(4);
        // A slot taken by a waiting accept is not a connection.
        let waiting = slots.take().await.unwrap();
        assert_eq!(connections.open(), 0);
        let emfile = stdio::Error::from_raw_os_error(24);
        connections.accept_failed(&emfile);
        connections.accept_failed(&emfile);
        assert_eq!(connections.accept_errors(), 2);
        assert!(connections.failing.load(Ordering::Relaxed));
        let open = connections.accepted(waiting);
        assert!(!connections.failing.load(Ordering::Relaxed));
        assert_eq!(connections.open(), 1);
        let closed = tokio::spawn({
            let connections = connections.clone();
            async move { connections.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!closed.is_finished());
        drop(open);
        closed.await.unwrap();
        assert_eq!(slots.in_use(), 0);
    }
}
