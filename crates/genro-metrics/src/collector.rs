use std::{
    convert::Infallible,
    fmt,
    future::{ready, Ready},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tower_service::Service;

use crate::{
    histogram::Histogram,
    labels::{RouteLabel, OVERFLOW},
};

/// The default most distinct route labels; see [`MetricsCollector::max_routes`].
pub const DEFAULT_MAX_ROUTES: usize = 500;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    method: &'static str,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    method: &'static str,
    route: RouteLabel,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Metric handles for one (method, route) pair, made once and reused by every request on it.
pub(crate) struct RouteHandles {
    pub(crate) duration: Histogram,
    pub(crate) size: Histogram,
    /// The collector's in-flight gauge, so a request can leave it without a collector handle.
    pub(crate) in_flight: Gauge,
    method: &'static str,
    pub(crate) route: RouteLabel,
    /// The statuses most responses have, without a lock.
    common: [std::sync::OnceLock<Counter>; COMMON_STATUSES.len()],
    statuses: RwLock<Vec<(u16, Counter)>>,
    requests: Family<RequestLabels, Counter>,
}

const COMMON_STATUSES: [u16; 8] = [200, 201, 204, 304, 400, 404, 500, 503];

impl RouteHandles {
    /// Counts one request answered with `status` on this route.
    #[inline]
    pub(crate) fn count(&self, status: u16) {
        match COMMON_STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.common[i].get_or_init(|| self.counter(status)).inc(),
            None => self.requests(status).inc(),
        };
    }

    fn counter(&self, status: u16) -> Counter {
        self.requests.get_or_create_owned(&RequestLabels {
            method: self.method,
            route: self.route.clone(),
            status,
        })
    }

    /// The request counter for a less common `status`. Statuses are few per route, so a short
    /// list read under a read lock beats hashing the whole label set.
    fn requests(&self, status: u16) -> Counter {
        if let Some((_, c)) = self
            .statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(s, _)| *s == status)
        {
            return c.clone();
        }
        let counter = self.counter(status);
        let mut statuses = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !statuses.iter().any(|(s, _)| *s == status) {
            statuses.push((status, counter.clone()));
        }
        counter
    }
}

/// (method, route) to its handles.
type RouteMap = hashbrown::HashMap<RouteKey, Arc<RouteHandles>, foldhash::fast::RandomState>;

/// An owned map key.
#[derive(PartialEq, Eq, Hash)]
struct RouteKey {
    method: &'static str,
    route: Arc<str>,
}

/// A borrowed key, hashed the same way, so a lookup copies nothing.
#[derive(Hash)]
struct RouteRef<'a> {
    method: &'static str,
    route: &'a str,
}

impl hashbrown::Equivalent<RouteKey> for RouteRef<'_> {
    fn equivalent(&self, key: &RouteKey) -> bool {
        self.method == key.method && self.route == &*key.route
    }
}

/// The HTTP metrics [`MetricsLayer`](crate::MetricsLayer) records.
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    size: HistogramFamily,
    pub(crate) in_flight: Gauge,
    routes: RwLock<RouteMap>,
    max_routes: usize,
    /// Route handles by template address, without a lock; see [`HttpMetrics::matched`].
    #[cfg(feature = "axum")]
    recent: Box<[std::sync::OnceLock<Recent>]>,
}

/// Slots of the lock-free route cache (a few KiB per collector).
#[cfg(feature = "axum")]
const RECENT_SLOTS: usize = 128;

/// A cached route. It holds the `MatchedPath`, so the template's address cannot be freed and
/// reused while the entry lives: equal addresses mean the same template.
#[cfg(feature = "axum")]
struct Recent {
    method: &'static str,
    path: axum::extract::MatchedPath,
    handles: Arc<RouteHandles>,
}

impl HttpMetrics {
    fn new(max_routes: usize) -> Self {
        Self {
            #[cfg(feature = "axum")]
            recent: (0..RECENT_SLOTS)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            requests: Family::default(),
            duration: Family::new_with_constructor(Histogram::duration),
            size: Family::new_with_constructor(Histogram::size),
            in_flight: Gauge::default(),
            routes: RwLock::default(),
            max_routes,
        }
    }

    /// The handles of an axum route template. Templates live in the router, so each has a
    /// stable address: a direct-mapped table of write-once slots, keyed by that address and the
    /// method's, answers most requests with one atomic load and no lock. The first route to
    /// claim a slot keeps it; a route whose slot is taken uses the locked map.
    #[cfg(feature = "axum")]
    #[inline]
    pub(crate) fn matched(
        &self,
        method: &'static str,
        path: &axum::extract::MatchedPath,
    ) -> Arc<RouteHandles> {
        let route = path.as_str();
        let at = ((route.as_ptr() as usize >> 3) ^ (method.as_ptr() as usize >> 1)) % RECENT_SLOTS;
        let slot = &self.recent[at];
        if let Some(hit) = slot.get() {
            if std::ptr::eq(hit.method, method) && std::ptr::eq(hit.path.as_str(), route) {
                return hit.handles.clone();
            }
            return self.route(method, route);
        }
        let handles = self.route(method, route);
        // Losing a race to another route only means this one keeps using the locked map.
        let _ = slot.set(Recent {
            method,
            path: path.clone(),
            handles: handles.clone(),
        });
        handles
    }

    /// The handles of (method, route), made on first use. Past `max_routes` distinct routes,
    /// new routes share the `overflow` label: the series count stays bounded whatever the
    /// route source.
    pub(crate) fn route(&self, method: &'static str, route: &str) -> Arc<RouteHandles> {
        {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = routes.get(&RouteRef { method, route }) {
                return handles.clone();
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = routes.get(&RouteRef { method, route }) {
            return handles.clone();
        }
        let distinct = routes.len();
        let label: Arc<str> = if distinct >= self.max_routes {
            if let Some(handles) = routes.get(&RouteRef {
                method,
                route: OVERFLOW,
            }) {
                return handles.clone();
            }
            Arc::from(OVERFLOW)
        } else {
            Arc::from(route)
        };
        let labels = RouteLabels {
            method,
            route: RouteLabel(label.clone()),
        };
        let handles = Arc::new(RouteHandles {
            duration: self.duration.get_or_create_owned(&labels),
            size: self.size.get_or_create_owned(&labels),
            in_flight: self.in_flight.clone(),
            method,
            route: labels.route.clone(),
            common: Default::default(),
            statuses: RwLock::new(Vec::new()),
            requests: self.requests.clone(),
        });
        routes.insert(
            RouteKey {
                method,
                route: label,
            },
            handles.clone(),
        );
        handles
    }
}

/// The Prometheus metrics of an application: a prometheus-client `Registry` holding the HTTP
/// metrics of [`MetricsLayer`](crate::MetricsLayer), those of the other genro crates, and the
/// user's own.
///
/// Cheap to clone: every clone is the same collector. The request path never takes the registry
/// lock; only registration and scrapes do.
#[derive(Clone)]
pub struct MetricsCollector {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    pub(crate) http: Arc<HttpMetrics>,
}

impl MetricsCollector {
    /// A collector with the HTTP metrics registered, and at most
    /// [`DEFAULT_MAX_ROUTES`] distinct route labels.
    #[must_use]
    pub fn new() -> Self {
        Self::max_routes(DEFAULT_MAX_ROUTES)
    }

    /// A collector that keeps at most `max` distinct route labels per method; later routes are
    /// counted under `route="overflow"`.
    #[must_use]
    pub fn max_routes(max: usize) -> Self {
        let http = Arc::new(HttpMetrics::new(max.max(1)));
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status, counted when the response ends",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from the request to the end of its response body",
            http.duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests whose response body has not ended",
            http.in_flight.clone(),
        );
        registry.register(
            "http_response_size_bytes",
            "Response body sizes",
            http.size.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                http,
            }),
        }
    }

    /// The prometheus-client registry, to register your own metrics (and other genro crates':
    /// `registry.register_metrics(&mut collector.registry())`).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers process metrics (CPU time, resident and virtual memory, open and maximum file
    /// descriptors, start time) where the platform gives them (Linux); elsewhere, nothing.
    pub fn register_process_metrics(&self) {
        crate::process::register(&mut self.registry());
    }

    /// Every metric, in the OpenMetrics text format.
    #[must_use]
    pub fn render(&self) -> String {
        self.encode(prometheus_client::encoding::text::encode)
    }

    /// Every metric, in the Prometheus text format (0.0.4).
    #[must_use]
    pub fn render_prometheus(&self) -> String {
        self.encode(prometheus_client::encoding::prometheus_text::encode)
    }

    fn encode(&self, encode: fn(&mut String, &Registry) -> fmt::Result) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry());
        out
    }

    /// A tower service that answers every request with the metrics: OpenMetrics when the
    /// `Accept` header asks for `application/openmetrics-text`, Prometheus text otherwise.
    ///
    /// With axum: `Router::new().route_service("/metrics", collector.service())`.
    #[must_use]
    pub fn service(&self) -> MetricsService {
        MetricsService {
            collector: self.clone(),
        }
    }

    pub(crate) fn http(&self) -> &Arc<HttpMetrics> {
        &self.inner.http
    }
}

impl Default for MetricsCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsCollector")
            .field("max_routes", &self.inner.http.max_routes)
            .finish_non_exhaustive()
    }
}

/// The `/metrics` endpoint; see [`MetricsCollector::service`].
#[derive(Clone, Debug)]
pub struct MetricsService {
    collector: MetricsCollector,
}

impl<B> Service<Request<B>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let openmetrics = req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        let (body, content_type) = if openmetrics {
            (self.collector.render(), OPENMETRICS_CONTENT_TYPE)
        } else {
            (self.collector.render_prometheus(), PROMETHEUS_CONTENT_TYPE)
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        ready(Ok(response))
    }
}
