//! What one connection is doing, as its task needs to know to close it in time: the requests
//! in progress (until each response body ends), when the last one ended, and whether its
//! responses are moving. [`PerRequest`], the service hyper calls, keeps it up to date.
//!
//! From it the connection's task decides ([`Activity::next`]):
//! - **idle**: no request in progress for too long. Before the first request that is
//!   `header_read_timeout`, on both protocols: a connection that sends nothing, trickles a
//!   request head, sends only the HTTP/2 preface or stalls inside a header block is closed then.
//!   Between requests, an HTTP/1 connection has `header_read_timeout` (the smaller of it and
//!   `idle_timeout`) to send its next complete head, which also bounds a head sent slowly on a
//!   kept-alive connection; an HTTP/2 connection, whose streams open and close while pings keep
//!   it alive, has `idle_timeout`. This is the server's header read timeout: one timer per
//!   connection, moved as the connection lives, instead of a timer armed for every request head
//!   (what hyper's own `header_read_timeout` does, at about 1,200 instructions per request);
//! - **stalled**: a response has a frame waiting to go and none has moved for `write_timeout`:
//!   the client stopped reading (a full socket on HTTP/1, a closed flow-control window on
//!   HTTP/2), and is disconnected.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use genro_envelope::plumbing::{serving_client, truncated};
use http::HeaderValue;
use hyper::{body::Incoming, Request};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use crate::body::IncomingBody;

/// The timeouts a connection's task applies, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Before the first request arrives.
    pub(crate) first_request: Duration,
    /// Between requests.
    pub(crate) idle: Duration,
    /// A response with something to send that does not move.
    pub(crate) write: Option<Duration>,
    /// Between two reads of a request body.
    pub(crate) body_read: Option<Duration>,
}

/// What one connection is doing; shared by its task and its requests. The request path only
/// counts (no clock is read per request); the connection's task reads the clock when it looks.
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

/// What the connection's task saw at its last look.
#[derive(Debug)]
pub(crate) struct Looked {
    born: Instant,
    progress: u64,
    ended: u64,
    /// The first look that saw no request in progress after the last one ended.
    idle_since: Instant,
}

impl Looked {
    pub(crate) fn new(born: Instant) -> Self {
        Self {
            born,
            progress: 0,
            ended: 0,
            idle_since: born,
        }
    }
}

/// What a connection's task does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Look again at this instant.
    CheckAt(Instant),
    /// Close: no request in progress for the idle limit.
    Idle,
    /// Close: a response has not moved for the write limit.
    Stalled,
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

    /// How long the connection may go without a request in progress once one has ended: the
    /// time an HTTP/1 client has to send its next head, or an HTTP/2 connection's idle limit.
    fn between_requests(&self, timeouts: &Timeouts) -> Duration {
        if self.http2.load(Ordering::Relaxed) {
            timeouts.idle
        } else {
            timeouts.idle.min(timeouts.first_request)
        }
    }

    /// Decides at `now` whether the connection is idle or stalled, else when to look again.
    /// The end of a request is dated by the first look that sees it; while requests run, the
    /// looks come at least every half of the limit between requests, so a connection left
    /// without one closes within one and a half of it.
    pub(crate) fn next(&self, now: Instant, timeouts: &Timeouts, looked: &mut Looked) -> Next {
        // Something to send, nothing sent since the last look (a whole `write` ago): stalled.
        let progress = self.progress.load(Ordering::Relaxed);
        let moved = std::mem::replace(&mut looked.progress, progress) != progress;
        let to_send =
            self.unsent.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Relaxed);
        if to_send && !moved && timeouts.write.is_some() {
            return Next::Stalled;
        }
        // With a write limit, a look at least every `write`: a request that starts meanwhile is
        // watched from then on.
        let write_look = timeouts.write.map(|write| now + write);
        let between = self.between_requests(timeouts);
        let idle_at = if self.in_flight.load(Ordering::Acquire) == 0 {
            let ended = self.ended.load(Ordering::Acquire);
            if ended != looked.ended {
                looked.ended = ended;
                looked.idle_since = now;
            }
            let (since, limit) = if ended > 0 {
                (looked.idle_since, between)
            } else {
                (looked.born, timeouts.first_request)
            };
            let deadline = since + limit;
            match (now >= deadline, to_send) {
                (false, _) => deadline,
                (true, false) => return Next::Idle,
                // Past the idle limit with a response still going out: not idle.
                (true, true) => now + timeouts.write.unwrap_or(timeouts.idle),
            }
        } else {
            // A request in progress: look again for a stall, or for its end.
            now + between / 2
        };
        Next::CheckAt(write_look.map_or(idle_at, |w| w.min(idle_at)))
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

    fn request_started(self: &Arc<Self>) -> InFlight {
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
struct InFlight {
    activity: Arc<Activity>,
    /// Whether this response's last frame is still waiting to be sent.
    unsent: bool,
}

impl InFlight {
    /// The response body is being polled again: its last frame went out.
    #[inline]
    fn polled(&mut self) {
        self.activity.moved();
        if std::mem::take(&mut self.unsent) {
            self.activity.unsent.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A frame was handed to hyper to send.
    fn handed_over(&mut self) {
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

/// The per-request adapter hyper calls: the request body with its read timeout, the client's
/// address for the envelope, a span that carries the request's ids on every log line written
/// while it is handled, one clone of the application per request (as `axum::serve` does), and
/// the request counted in the connection's [`Activity`] until its response body ends.
#[derive(Clone)]
pub(crate) struct PerRequest<A> {
    pub(crate) app: A,
    pub(crate) activity: Arc<Activity>,
    pub(crate) body_read_timeout: Option<Duration>,
}

impl<A, B> hyper::service::Service<Request<Incoming>> for PerRequest<A>
where
    A: Service<Request<IncomingBody>, Response = http::Response<B>> + Clone + Send + 'static,
    A::Future: Send + 'static,
{
    type Response = http::Response<Tracked<B>>;
    type Error = A::Error;
    type Future =
        Counted<tracing::instrument::Instrumented<tower::util::Oneshot<A, Request<IncomingBody>>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // The envelope learns the client from `Counted`, which polls the request inside
        // `serving_client`: no extension per request for a value known per connection. (axum's
        // `ConnectInfo` is not set either; the envelope's `client()` has the address.)
        #[cfg_attr(not(feature = "opentelemetry"), allow(unused_mut))]
        let mut req = req.map(|body| IncomingBody::new(body, self.body_read_timeout));
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %truncated(req.uri().path(), genro_notify::MAX_REPORTED_PATH),
            request_id = tracing::field::Empty,
            external_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        // Before the span is first entered (tracing-opentelemetry starts it then) and before the
        // envelope is made (it takes the trace OpenTelemetry starts).
        #[cfg(feature = "opentelemetry")]
        genro_envelope::otel::join_trace(&span, &mut req);
        let http1 = req.version() < http::Version::HTTP_2;
        if !http1 {
            self.activity.http2.store(true, Ordering::Relaxed);
        }
        Counted {
            inner: self.app.clone().oneshot(req).instrument(span),
            in_flight: Some(self.activity.request_started()),
            http1,
        }
    }
}

pin_project! {
    /// The response future of [`PerRequest`]: the request stays counted, through its response
    /// body, until that ends.
    pub(crate) struct Counted<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        http1: bool,
    }
}

impl<F, B, E> Future for Counted<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let peer = this
            .in_flight
            .as_ref()
            .expect("polled after completion")
            .activity
            .peer;
        let result = std::task::ready!(serving_client(peer, || inner.poll(cx)));
        let in_flight = this.in_flight.take();
        let closing = *this.http1
            && in_flight
                .as_ref()
                .is_some_and(|f| f.activity.closing.load(Ordering::Relaxed));
        Poll::Ready(result.map(|mut res| {
            if closing {
                ask_to_close(&mut res);
            }
            res.map(|inner| Tracked {
                inner,
                in_flight,
                rest: Bytes::new(),
            })
        }))
    }
}

/// `connection: close` on an HTTP/1 response while the server drains: out of line, so that the
/// request path's code stays as it is when the server is not draining.
#[cold]
#[inline(never)]
fn ask_to_close<B>(res: &mut http::Response<B>) {
    res.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

/// The largest piece of a response hyper is handed at once. hyper's HTTP/2 side takes a whole
/// frame into h2's send buffer as soon as the stream has any window at all; handed in pieces,
/// a response whose client keeps its window shut stops at the next piece, where the
/// connection's task sees it stall.
const PIECE: usize = 64 << 10;

pin_project! {
    /// A response body counted in its connection's [`Activity`] until it ends or is dropped,
    /// handed to hyper in pieces of at most [`PIECE`] bytes.
    pub(crate) struct Tracked<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
        // What is left of a large frame.
        rest: Bytes,
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(in_flight) = this.in_flight.as_mut() {
            in_flight.polled();
        }
        let frame = if this.rest.is_empty() {
            let mut frame = std::task::ready!(this.inner.poll_frame(cx));
            // Rare: a frame larger than a piece is handed over in pieces.
            if let Some(Ok(large)) = frame.as_mut() {
                if large.data_ref().is_some_and(|data| data.len() > PIECE) {
                    if let Some(data) = large.data_mut() {
                        *this.rest = std::mem::take(data);
                        *data = this.rest.split_to(PIECE);
                    }
                }
            }
            frame
        } else {
            let piece = this.rest.len().min(PIECE);
            Some(Ok(http_body::Frame::data(this.rest.split_to(piece))))
        };
        // At the end (`None`, or an error) the request stays in progress until the body is
        // dropped, once hyper has sent the last frame.
        if let (Some(Ok(_)), Some(in_flight)) = (&frame, this.in_flight.as_mut()) {
            in_flight.handed_over();
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> http_body::SizeHint {
        let hint = self.inner.size_hint();
        if self.rest.is_empty() {
            return hint;
        }
        let rest = self.rest.len() as u64;
        let mut sized = http_body::SizeHint::new();
        sized.set_lower(hint.lower().saturating_add(rest));
        if let Some(upper) = hint.upper() {
            sized.set_upper(upper.saturating_add(rest));
        }
        sized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            first_request: Duration::from_secs(1),
            idle: Duration::from_secs(5),
            write: Some(Duration::from_secs(2)),
            body_read: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_before_the_first_request_after_the_last_and_never_while_one_runs() {
        let activity = Activity::new(([127, 0, 0, 1], 9).into());
        // HTTP/2: between requests, the idle limit.
        activity.http2.store(true, Ordering::Relaxed);
        let t = timeouts();
        let born = Instant::now();
        let mut looked = Looked::new(born);
        assert_eq!(
            activity.next(born, &t, &mut looked),
            Next::CheckAt(born + t.first_request)
        );
        assert_eq!(
            activity.next(born + t.first_request, &t, &mut looked),
            Next::Idle
        );

        let request = activity.request_started();
        // A request in progress, nothing to send: never idle, never stalled; looked at again
        // within the write limit and half the idle limit.
        let later = born + Duration::from_secs(60);
        assert_eq!(
            activity.next(later, &t, &mut looked),
            Next::CheckAt(later + Duration::from_secs(2))
        );
        drop(request);
        // The first look after the end dates it; idle from there.
        let seen = later + Duration::from_secs(2);
        assert_eq!(
            activity.next(seen, &t, &mut looked),
            Next::CheckAt(seen + t.write.unwrap())
        );
        assert_eq!(
            activity.next(seen + t.idle - Duration::from_millis(1), &t, &mut looked),
            Next::CheckAt(seen + t.idle)
        );
        assert_eq!(activity.next(seen + t.idle, &t, &mut looked), Next::Idle);
        // A request that came and went between two looks starts the idle time again.
        drop(activity.request_started());
        let again = seen + t.idle + Duration::from_secs(1);
        assert_eq!(
            activity.next(again, &t, &mut looked),
            Next::CheckAt(again + t.write.unwrap())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_connection_has_the_header_read_timeout_to_send_its_next_head() {
        let activity = Activity::new(([127, 0, 0, 1], 9).into());
        let t = timeouts();
        let born = Instant::now();
        let mut looked = Looked::new(born);
        let request = activity.request_started();
        // While a request runs, looks come every half of the limit between requests (1 s).
        assert_eq!(
            activity.next(born, &t, &mut looked),
            Next::CheckAt(born + t.first_request / 2)
        );
        drop(request);
        let seen = born + t.first_request / 2;
        assert_eq!(
            activity.next(seen, &t, &mut looked),
            Next::CheckAt(seen + t.first_request)
        );
        // Not the idle limit (5 s): the next head must be in within the header read timeout,
        // however slowly its bytes arrive.
        assert_eq!(
            activity.next(seen + t.first_request, &t, &mut looked),
            Next::Idle
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_that_does_not_move_for_a_whole_look_is_stalled() {
        let activity = Activity::new(([127, 0, 0, 1], 9).into());
        let t = timeouts();
        let mut looked = Looked::new(Instant::now());
        let mut request = activity.request_started();
        request.polled();
        request.handed_over();
        let now = Instant::now();
        // The first look sees progress since the start; the second sees none.
        assert!(matches!(
            activity.next(now, &t, &mut looked),
            Next::CheckAt(_)
        ));
        assert_eq!(activity.next(now, &t, &mut looked), Next::Stalled);
        // Taken further: moving again.
        request.polled();
        assert!(matches!(
            activity.next(now, &t, &mut looked),
            Next::CheckAt(_)
        ));
        drop(request);
        assert_eq!(activity.unsent.load(Ordering::Relaxed), 0);
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 0);
    }
}
