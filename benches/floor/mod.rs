//! The floor of the loopback comparison: the work the request path is required to do, written
//! with `http`, `http-body`, `std` (and `fastrand` for the id's random bits, as the envelope
//! uses) and no genro code, so that what genro-asgi costs above it is known.
//!
//! [`FloorLayer`] is what `GenroLayer` must do for each request, as a per-route layer (axum's
//! `Router::layer`, which the route templates need):
//! - an envelope in an `Arc` in the request extensions: a UUIDv7, the method, the URI, the
//!   start, the external id when the client sent a valid one;
//! - the `x-request-id` response header: the external id echoed, else the UUID, marked
//!   sensitive (HTTP/2 sends it as a literal never indexed);
//! - the request in a registry (a mutex-guarded slab) from its arrival to the end of its body;
//! - metrics timed to the end of the body: an in-flight gauge, a duration histogram, a count
//!   per method, route template and status;
//! - panics caught in `call` and in every poll, answered 500.
//!
//! [`serve`] adds what the `AsgiServer` must do per request on top of `axum::serve`'s loop: the
//! request counted in its connection until its body ends (idle and stall detection), the
//! built-in endpoints answered before the router, the body limit by `Content-Length`, and the
//! client's address for the envelope. What the server does per connection (the header read
//! timeout, the drain) costs nothing per request and is left out.

use std::{
    cell::Cell,
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, RwLock,
    },
    task::{Context, Poll},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, extract::MatchedPath, Router};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::{Frame, SizeHint};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What every request refers to.
#[allow(dead_code)] // the fields are what an envelope must hold, read by no one here
pub(crate) struct Envelope {
    id: u128,
    method: Method,
    uri: Uri,
    started: Instant,
    client: Option<SocketAddr>,
    external: Option<HeaderValue>,
}

std::thread_local! {
    static CLIENT: Cell<Option<SocketAddr>> = const { Cell::new(None) };
}

fn uuid_v7(now: SystemTime) -> u128 {
    let ms = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let random = fastrand::u128(..);
    (ms << 80) | (0x7 << 76) | (random & 0x0fff_3fff_ffff_ffff_ffff) | (0b10 << 62)
}

fn valid_external(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

fn hyphenated(id: u128) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut at = 0;
    for (i, byte) in id.to_be_bytes().iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    HeaderValue::from_bytes(&out).expect("hex and dashes")
}

#[derive(Default)]
struct Registry {
    slots: Vec<Option<Arc<Envelope>>>,
    free: Vec<usize>,
}

/// The registry, the metrics and the per-series counts.
pub(crate) struct Shared {
    registry: Mutex<Registry>,
    in_flight: AtomicI64,
    buckets: [AtomicU64; 12],
    sum_us: AtomicU64,
    series: RwLock<HashMap<(Method, Arc<str>, u16), AtomicU64>>,
    epoch: (SystemTime, Instant),
}

impl Shared {
    fn track(&self, envelope: Arc<Envelope>) -> usize {
        let mut registry = self.registry.lock().unwrap();
        if let Some(slot) = registry.free.pop() {
            registry.slots[slot] = Some(envelope);
            slot
        } else {
            registry.slots.push(Some(envelope));
            registry.slots.len() - 1
        }
    }

    fn finish(&self, done: &Done) {
        let elapsed = done.envelope.started.elapsed();
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let key = (
            done.envelope.method.clone(),
            done.route.clone(),
            done.status,
        );
        let counted = match self.series.read().unwrap().get(&key) {
            Some(count) => {
                count.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        };
        if !counted {
            let mut series = self.series.write().unwrap();
            // Bounded: at most 1,000 series.
            if series.len() < 1000 {
                series
                    .entry(key)
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut registry = self.registry.lock().unwrap();
        registry.slots[done.slot] = None;
        registry.free.push(done.slot);
    }
}

/// The per-route layer.
#[derive(Clone)]
pub(crate) struct FloorLayer(Arc<Shared>);

impl FloorLayer {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Shared {
            registry: Mutex::default(),
            in_flight: AtomicI64::new(0),
            buckets: Default::default(),
            sum_us: AtomicU64::new(0),
            series: RwLock::default(),
            epoch: (SystemTime::now(), Instant::now()),
        }))
    }
}

impl<S> tower::Layer<S> for FloorLayer {
    type Service = Floor<S>;

    fn layer(&self, inner: S) -> Floor<S> {
        Floor {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Floor<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What lives from the request to the end of its response body.
pub(crate) struct Done {
    envelope: Arc<Envelope>,
    route: Arc<str>,
    slot: usize,
    status: u16,
    shared: Arc<Shared>,
}

impl Drop for Done {
    fn drop(&mut self) {
        Shared::finish(&self.shared, self);
    }
}

impl<S> tower::Service<Request<Body>> for Floor<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Until<Done>>;
    type Error = Infallible;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let shared = &self.shared;
        let started = Instant::now();
        let now = shared.epoch.0 + started.duration_since(shared.epoch.1);
        let envelope = Arc::new(Envelope {
            id: uuid_v7(now),
            method: req.method().clone(),
            uri: req.uri().clone(),
            started,
            client: CLIENT.get(),
            external: req
                .headers()
                .get(X_REQUEST_ID)
                .filter(|v| valid_external(v))
                .cloned(),
        });
        req.extensions_mut().insert(envelope.clone());
        let route: Arc<str> = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| Arc::from("unmatched"), |p| Arc::from(p.as_str()));
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = shared.track(envelope.clone());
        let done = Done {
            envelope,
            route,
            slot,
            status: 0,
            shared: shared.clone(),
        };
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => FloorFuture {
                future: Some(future),
                done: Some(done),
            },
            Err(_) => FloorFuture {
                future: None,
                done: Some(done),
            },
        }
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct FloorFuture<F> {
        #[pin]
        future: Option<F>,
        done: Option<Done>,
    }
}

impl<F> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Until<Done>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.future.as_pin_mut() {
            Some(future) => catch_unwind(AssertUnwindSafe(|| future.poll(cx))),
            None => Err(Box::new(()) as Box<dyn std::any::Any + Send>),
        };
        let mut response = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(response))) => response,
            Ok(Poll::Ready(Err(never))) => match never {},
            Err(_) => {
                let mut response = Response::new(Body::from("internal error"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        };
        let mut done = this.done.take().expect("polled after completion");
        if let http::header::Entry::Vacant(slot) = response.headers_mut().entry(X_REQUEST_ID) {
            let mut value = done
                .envelope
                .external
                .clone()
                .unwrap_or_else(|| hyphenated(done.envelope.id));
            // New on every response: never indexed by HTTP/2's HPACK.
            value.set_sensitive(true);
            slot.insert(value);
        }
        done.status = response.status().as_u16();
        Poll::Ready(Ok(response.map(|inner| Until::new(inner, Some(done)))))
    }
}

/// A response body that holds `T` (a request's registry entry and measurement, or its count
/// in the connection) until the body ends or is dropped.
pub(crate) struct Until<T> {
    inner: Body,
    held: Option<T>,
}

impl<T> Until<T> {
    fn new(inner: Body, held: Option<T>) -> Self {
        Self { inner, held }
    }
}

impl<T: Unpin> http_body::Body for Until<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.held = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router behind the floor layer.
pub(crate) fn app(router: Router) -> Router {
    router.layer(FloorLayer::new())
}

/// What a connection counts: the requests whose response has not ended.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    ended: AtomicU64,
}

/// A request counted in its connection until its response body ends.
pub(crate) struct InConnection(Arc<Activity>);

impl Drop for InConnection {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// `app` (the router behind [`FloorLayer`]) on hyper-util's auto builder, as `axum::serve`
/// serves it, with what the `AsgiServer` adds per request.
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router, body_limit: u64) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo},
        server::conn::auto::Builder,
    };
    use tower::ServiceExt;
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, app) = (builder.clone(), app.clone());
        let activity = Arc::new(Activity::default());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                let activity = activity.clone();
                async move {
                    // The built-in endpoints, before the router.
                    let path = req.uri().path();
                    if path == "/metrics" || path == "/health/live" || path == "/health/ready" {
                        return Ok::<_, Infallible>(Response::new(Until::<InConnection>::new(
                            Body::from("ok"),
                            None,
                        )));
                    }
                    // The body limit by Content-Length, then on the body as it is read.
                    let declared = req
                        .headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    if declared.is_some_and(|l| l > body_limit) {
                        let mut res = Response::new(Until::new(Body::from("too large"), None));
                        *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                        return Ok(res);
                    }
                    let req = req.map(|b| {
                        Body::new(http_body_util::Limited::new(
                            b,
                            usize::try_from(body_limit).unwrap_or(usize::MAX),
                        ))
                    });
                    activity.in_flight.fetch_add(1, Ordering::Acquire);
                    let counted = InConnection(activity);
                    // The client's address for the envelope, around each poll.
                    let mut future = std::pin::pin!(app.oneshot(req));
                    let res = std::future::poll_fn(|cx| {
                        let previous = CLIENT.replace(Some(peer));
                        let polled = future.as_mut().poll(cx);
                        CLIENT.set(previous);
                        polled
                    })
                    .await;
                    let res = match res {
                        Ok(res) => res,
                        Err(never) => match never {},
                    };
                    Ok(res.map(|inner| Until::new(inner, Some(counted))))
                }
            });
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
