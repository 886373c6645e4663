//! The per-request adapter hyper calls ([`PerRequest`]), the outermost step of the request
//! path: the request body with its read timeout, a span with the request's ids, the client's
//! address for the envelope, and the request counted in its connection's [`Activity`] until
//! its response body ends. [`PortService`] is what it calls: the edge, or the export port's
//! endpoints.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use genro_envelope::plumbing::{serving_client, truncated};
use genro_errors::BoxError;
use http::HeaderValue;
use hyper::{body::Incoming, Request};
use pin_project_lite::pin_project;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::{
    activity::{Activity, InFlight},
    body::IncomingBody,
};

/// What a port serves: the application (or the export port's endpoints) as the adapter calls
/// it.
pub(crate) trait PortService<B>:
    Service<
        Request<IncomingBody>,
        Response = http::Response<B>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, B> PortService<B> for S where
    S: Service<
            Request<IncomingBody>,
            Response = http::Response<B>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
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
            self.activity.speaks_http2();
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
        let closing = *this.http1 && in_flight.as_ref().is_some_and(|f| f.activity.is_closing());
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
