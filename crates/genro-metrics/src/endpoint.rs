//! The `/metrics` endpoint: renders off the async runtime, one render at a time, with
//! concurrent scrapes sharing it.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, PoisonError,
    },
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::MetricsCollector;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The most scrapes of one format that may wait for a render; more are answered 503 at once.
pub const MAX_WAITING_SCRAPES: usize = 64;

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenMetrics = 0,
    Prometheus = 1,
}

impl Format {
    fn of<B>(req: &Request<B>) -> Self {
        let openmetrics = req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        if openmetrics {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// One render at a time per format, and what it produced.
#[derive(Debug)]
struct Slot {
    gate: tokio::sync::Semaphore,
    /// The last render: when it started, and its text.
    last: Mutex<Option<(Instant, Bytes)>>,
    waiting: AtomicUsize,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            gate: tokio::sync::Semaphore::new(1),
            last: Mutex::new(None),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// The render state of a collector's endpoints.
#[derive(Debug, Default)]
pub(crate) struct Renders {
    slots: [Slot; 2],
}

/// The `/metrics` endpoint; see [`MetricsCollector::endpoint`].
///
/// A scrape never blocks the async runtime and never piles up:
/// - rendering locks the registry and reads `/proc` (process metrics), so it runs on tokio's
///   blocking pool (`spawn_blocking`), never on a runtime worker;
/// - one render of each format runs at a time; a scrape that arrives while one is waiting to
///   start shares its result instead of rendering again, so N concurrent scrapes cost one or two
///   renders, not N;
/// - at most [`MAX_WAITING_SCRAPES`] scrapes of one format wait; more get `503` with
///   `Retry-After: 1` at once.
#[derive(Clone, Debug)]
pub struct MetricsEndpoint {
    collector: MetricsCollector,
}

impl MetricsEndpoint {
    pub(crate) fn new(collector: MetricsCollector) -> Self {
        Self { collector }
    }
}

/// Response future of [`MetricsEndpoint`].
pub type EndpointFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static>>;

impl<B> Service<Request<B>> for MetricsEndpoint {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let format = Format::of(&req);
        let collector = self.collector.clone();
        Box::pin(async move { Ok(scrape(collector, format).await) })
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn scrape(collector: MetricsCollector, format: Format) -> Response<Full<Bytes>> {
    let slot = &collector.renders().slots[format as usize];
    if slot.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_SCRAPES {
        slot.waiting.fetch_sub(1, Ordering::AcqRel);
        let mut res = text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many concurrent scrapes\n",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    }
    let _waiting = Waiting(&slot.waiting);
    let asked = Instant::now();
    // The semaphore is never closed, so acquiring only waits.
    let Ok(_permit) = slot.gate.acquire().await else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n");
    };
    let last = slot
        .last
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some((started, body)) = last {
        if started >= asked {
            return metrics(format, body);
        }
    }
    let started = Instant::now();
    let render = {
        let collector = collector.clone();
        move || match format {
            Format::OpenMetrics => collector.render(),
            Format::Prometheus => collector.render_prometheus(),
        }
    };
    let body = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.spawn_blocking(render).await {
            Ok(text) => Bytes::from(text),
            Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "metrics render failed\n"),
        },
        Err(_) => Bytes::from(render()),
    };
    *slot.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((started, body.clone()));
    metrics(format, body)
}

fn metrics(format: Format, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
