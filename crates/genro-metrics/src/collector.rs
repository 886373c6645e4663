use std::{
    collections::HashMap,
    fmt,
    sync::{atomic::AtomicBool, Arc, Mutex, MutexGuard, PoisonError, RwLock},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    endpoint::{MetricsEndpoint, Renders},
    histogram::Histogram,
    labels::{RouteLabel, METHODS, OVERFLOW},
};

/// The default most distinct route labels; see [`MetricsCollector::with_max_routes`].
pub const DEFAULT_MAX_ROUTES: usize = 500;

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
    /// The request counter of each status seen on this route. Statuses are few per route, so a
    /// short list read under a read lock beats hashing the whole label set.
    statuses: RwLock<Vec<(u16, Counter)>>,
    requests: Family<RequestLabels, Counter>,
}

impl RouteHandles {
    /// Counts one request answered with `status` on this route.
    #[inline]
    pub(crate) fn count(&self, status: u16) {
        if let Some((_, c)) = self
            .statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(s, _)| *s == status)
        {
            c.inc();
            return;
        }
        let counter = self.requests.get_or_create_owned(&RequestLabels {
            method: self.method,
            route: self.route.clone(),
            status,
        });
        counter.inc();
        let mut statuses = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !statuses.iter().any(|(s, _)| *s == status) {
            statuses.push((status, counter));
        }
    }
}

/// Where a route label comes from, which decides whether it counts against the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteSource {
    /// A template of the server's own router (axum's `MatchedPath`): bounded by the code, never
    /// capped, so a real route always keeps its label.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Template,
    /// A route claimed at run time (a proven gRPC method, or set on the envelope): capped.
    Claimed,
    /// `unmatched` or `overflow`.
    Fixed,
}

/// The route map of one method: template to handles.
///
/// A plain map, measured against the lock-free table keyed by the template's address that it
/// replaced (`benches/callgrind.sh`, `metrics` row, same machine): the table saved a handful of
/// instructions per request, which did not pay for its code.
type RouteMap = HashMap<Arc<str>, Arc<RouteHandles>, foldhash::fast::RandomState>;

/// The HTTP metrics [`MetricsLayer`](crate::MetricsLayer) records.
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    size: HistogramFamily,
    pub(crate) in_flight: Gauge,
    /// One map per method label, so a lookup hashes the route only.
    routes: [RwLock<RouteMap>; METHODS.len()],
    /// How many claimed routes have a label of their own, against `max_routes`.
    claimed: Mutex<usize>,
    max_routes: usize,
    /// Set once the "every route is unmatched" warning has been logged.
    pub(crate) warned_unmatched: AtomicBool,
}

impl HttpMetrics {
    fn new(max_routes: usize) -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(Histogram::duration),
            size: Family::new_with_constructor(Histogram::size),
            in_flight: Gauge::default(),
            routes: Default::default(),
            claimed: Mutex::new(0),
            max_routes,
            warned_unmatched: AtomicBool::new(false),
        }
    }

    /// The handles of (method, route), made on first use. Past `max_routes` distinct claimed
    /// routes, new claimed routes share the `overflow` label, so the series count stays bounded
    /// whatever the route source; templates of the server's router are never capped.
    pub(crate) fn route(
        &self,
        method: usize,
        route: &str,
        source: RouteSource,
    ) -> Arc<RouteHandles> {
        let map = &self.routes[method];
        if let Some(handles) = map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return handles.clone();
        }
        let label = if source == RouteSource::Claimed {
            let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            if *claimed >= self.max_routes {
                return self.route(method, OVERFLOW, RouteSource::Fixed);
            }
            *claimed += 1;
            route
        } else {
            route
        };
        let mut routes = map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = routes.get(label) {
            if source == RouteSource::Claimed {
                // Another request claimed it first: give the slot back.
                *self.claimed.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
            }
            return handles.clone();
        }
        let label: Arc<str> = Arc::from(label);
        let labels = RouteLabels {
            method: METHODS[method],
            route: RouteLabel(label.clone()),
        };
        let handles = Arc::new(RouteHandles {
            duration: self.duration.get_or_create_owned(&labels),
            size: self.size.get_or_create_owned(&labels),
            in_flight: self.in_flight.clone(),
            method: METHODS[method],
            route: labels.route.clone(),
            statuses: RwLock::new(Vec::new()),
            requests: self.requests.clone(),
        });
        routes.insert(label, handles.clone());
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

pub(crate) struct Inner {
    registry: Mutex<Registry>,
    pub(crate) http: Arc<HttpMetrics>,
    pub(crate) renders: Renders,
}

impl MetricsCollector {
    /// A collector with the HTTP metrics registered, and at most [`DEFAULT_MAX_ROUTES`]
    /// distinct claimed route labels.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_routes(DEFAULT_MAX_ROUTES)
    }

    /// A collector that gives at most `max` distinct (method, route) pairs claimed at run time
    /// (proven gRPC methods, routes set on the envelope) a label of their own; later ones are
    /// counted under `route="overflow"`. Templates of the server's router (axum's
    /// `MatchedPath`) always keep their own label and do not count against `max`.
    #[must_use]
    pub fn with_max_routes(max: usize) -> Self {
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
                renders: Renders::default(),
            }),
        }
    }

    /// The prometheus-client registry, to register your own metrics (and other genro crates':
    /// `registry.register_metrics(&mut collector.registry())`).
    ///
    /// Hold the guard briefly: scrapes wait for it.
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
    ///
    /// This locks the registry and reads `/proc` when process metrics are registered: call it
    /// off the async runtime, as [`endpoint`](Self::endpoint) does.
    #[must_use]
    pub fn render(&self) -> String {
        self.encode(prometheus_client::encoding::text::encode)
    }

    /// Every metric, in the Prometheus text format (0.0.4). Same caveat as
    /// [`render`](Self::render).
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
    /// With axum: `Router::new().route_service("/metrics", collector.endpoint())`. See
    /// [`MetricsEndpoint`] for how scrapes are bounded.
    #[must_use]
    pub fn endpoint(&self) -> MetricsEndpoint {
        MetricsEndpoint::new(self.clone())
    }

    pub(crate) fn http(&self) -> &Arc<HttpMetrics> {
        &self.inner.http
    }

    pub(crate) fn renders(&self) -> &Renders {
        &self.inner.renders
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
