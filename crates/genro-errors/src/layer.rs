use std::{
    error::Error as StdError,
    fmt,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use genro_envelope::RequestEnvelope;
use genro_notify::{Notifier, Notifiers};
use http::Response;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tower_layer::Layer;

use crate::{
    report::OTHER, throttle::Throttle, ErrorKind, ErrorReport, ErrorService, Observer, Problem,
};

/// Client-error lines a second for each kind of line, by default.
const DEFAULT_CLIENT_LINES: NonZeroU32 = NonZeroU32::new(10).expect("not zero");

pub(crate) type Render =
    dyn Fn(&(dyn StdError + 'static), &RequestEnvelope) -> Option<Problem> + Send + Sync;
pub(crate) type Critical = dyn Fn(&ErrorReport) -> bool + Send + Sync;

pub(crate) struct Handler {
    pub(crate) label: &'static str,
    pub(crate) render: Arc<Render>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub(crate) kind: &'static str,
    pub(crate) r#type: &'static str,
}

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) handlers: Vec<Arc<Handler>>,
    pub(crate) traceback: TracebackSwitch,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) observer_timeout: Duration,
    pub(crate) notifiers: Notifiers,
    pub(crate) critical_when: Arc<Critical>,
    pub(crate) errors: Family<ErrorLabels, Counter>,
    pub(crate) framework: bool,
    pub(crate) client_level: Option<tracing::Level>,
    /// The bound on client-error lines; `None` writes every one.
    pub(crate) client_lines: Option<Throttle>,
}

impl Settings {
    pub(crate) fn count(&self, kind: ErrorKind, error_type: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.as_str(),
                r#type: error_type,
            })
            .inc();
    }
}

/// A [`Layer`] that handles every error and panic of the inner service in one place.
///
/// It turns into one consistent response:
/// - errors returned by the inner service (`S::Error: Into<BoxError>`);
/// - panics, in `call` or in the response future: the client gets a real 500, not a reset
///   connection;
/// - an [`Error`](crate::Error) returned by a handler (with the `axum` feature, through
///   `IntoResponse`).
///
/// For each error it picks the handler registered for the error's type (searched along the
/// `source()` chain), or a default: timeouts → 504, body limit → 413, load shed → 503 with
/// `Retry-After`, anything else → 500. It logs one event with `error_id` (the envelope's short
/// id), the ids, method, path, route, error type and backtrace; counts
/// `errors_total{kind,type}`; sends critical errors to the notifiers; runs the observers; and
/// renders the [`Problem`] as `application/problem+json` (RFC 9457), HTML or text by content
/// negotiation, with an `x-error-id` header. A gRPC request gets a trailers-only response whose
/// `grpc-status` maps the HTTP status and whose `grpc-message` carries the error id.
///
/// The error path cannot crash the connection: a panic in a registered handler or in the
/// `critical_when` rule still gives one 500 with an error id (counted as
/// `{kind="panic",type="error_path_panic"}`), and observers and notifiers run on tasks of their
/// own.
///
/// Panic payloads, Debug output and backtraces are logged, never sent, unless
/// [`show_traceback`](Self::show_traceback) is on.
#[derive(Clone)]
pub struct ErrorLayer {
    pub(crate) settings: Arc<Settings>,
}

impl ErrorLayer {
    /// A layer with the default handlers, no observers or notifiers, and `show_traceback` off.
    #[must_use]
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                handlers: Vec::new(),
                traceback: TracebackSwitch::new(false),
                observers: Vec::new(),
                observer_timeout: Duration::from_secs(2),
                notifiers: Notifiers::new(),
                critical_when: Arc::new(|r: &ErrorReport| {
                    r.kind == ErrorKind::Panic
                        || (r.error_type == OTHER && r.status.is_server_error())
                }),
                errors: Family::default(),
                framework: false,
                client_level: Some(tracing::Level::WARN),
                client_lines: Some(Throttle::new(DEFAULT_CLIENT_LINES)),
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Renders errors of type `E` (found anywhere along the `source()` chain) with `render`.
    /// The type is the closure's first argument:
    ///
    /// ```
    /// # use genro_errors::{ErrorLayer, Problem};
    /// # #[derive(Debug)] struct NotFound;
    /// # impl std::fmt::Display for NotFound { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("nf") } }
    /// # impl std::error::Error for NotFound {}
    /// let layer = ErrorLayer::new().handler("not_found", |_: &NotFound, _envelope| {
    ///     Problem::new(http::StatusCode::NOT_FOUND)
    /// });
    /// ```
    ///
    /// `label` is the error's `type` label in `errors_total` and its `error_type` in logs and
    /// reports: choose it once and keep it, as dashboards depend on it. Handlers are tried in the
    /// order they were added; the first whose type matches wins.
    #[must_use]
    pub fn handler<E, F>(mut self, label: &'static str, render: F) -> Self
    where
        E: StdError + 'static,
        F: Fn(&E, &RequestEnvelope) -> Problem + Send + Sync + 'static,
    {
        let render: Arc<Render> = Arc::new(
            move |error: &(dyn StdError + 'static), envelope: &RequestEnvelope| {
                error.downcast_ref::<E>().map(|e| render(e, envelope))
            },
        );
        self.settings_mut()
            .handlers
            .push(Arc::new(Handler { label, render }));
        self
    }

    /// Like [`handler`](Self::handler), for a handler that builds the whole response itself
    /// (see [`Problem::from_response`]).
    #[must_use]
    pub fn handler_response<E, F>(self, label: &'static str, respond: F) -> Self
    where
        E: StdError + 'static,
        F: Fn(&E, &RequestEnvelope) -> Response<bytes::Bytes> + Send + Sync + 'static,
    {
        self.handler(label, move |error: &E, envelope| {
            Problem::from_response(respond(error, envelope))
        })
    }

    /// Whether responses include the error's detail and its backtrace or panic message. Off by
    /// default; turn it on only where the clients are the developers.
    ///
    /// This sets this layer's own copy only. To change it while the layer runs, install a
    /// shared [`TracebackSwitch`] with [`traceback_switch`](Self::traceback_switch).
    #[must_use]
    pub fn show_traceback(mut self, show: bool) -> Self {
        self.settings_mut().traceback = TracebackSwitch::new(show);
        self
    }

    /// Reads `show_traceback` from `switch`, which can be flipped while the layer runs (hot
    /// reload). Every layer given the same switch follows it.
    #[must_use]
    pub fn traceback_switch(mut self, switch: &TracebackSwitch) -> Self {
        self.settings_mut().traceback = switch.clone();
        self
    }

    /// Calls `observer` for every handled error, before the response is sent.
    #[must_use]
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.settings_mut().observers.push(Arc::new(observer));
        self
    }

    /// The longest the response waits for the observers. They run concurrently, so this bounds
    /// each one and all of them together. Default 2 s.
    #[must_use]
    pub fn observer_timeout(mut self, limit: Duration) -> Self {
        self.settings_mut().observer_timeout = limit;
        self
    }

    /// Sends every critical error (see [`critical_when`](Self::critical_when)) to `notifier`,
    /// as a `critical_error` notification. The response never waits for it.
    #[must_use]
    pub fn notifier(mut self, notifier: impl Notifier) -> Self {
        let settings = self.settings_mut();
        let name = format!("error notifier {}", settings.notifiers.len() + 1);
        settings.notifiers.push(name, notifier);
        self
    }

    /// Sends critical errors to `notifiers`, replacing those added so far: to share one set
    /// (one webhook, say) with the watchdog's stuck-request reports.
    #[must_use]
    pub fn notifiers(mut self, notifiers: Notifiers) -> Self {
        self.settings_mut().notifiers = notifiers;
        self
    }

    /// Which errors are critical (the report's `critical` flag, and what is sent to the
    /// notifiers). Default: panics, and 5xx errors that no registered handler claimed. A rule
    /// that panics counts the error as critical.
    #[must_use]
    pub fn critical_when(
        mut self,
        rule: impl Fn(&ErrorReport) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settings_mut().critical_when = Arc::new(rule);
        self
    }

    /// Renders the errors the framework answers by itself like every other error: the router's
    /// 404 and 405, axum's extractor rejections (400, 411, 413, 415, 422), tower-http's body
    /// limit, and any bodiless 4xx or 5xx a handler returned (`StatusCode::UNAUTHORIZED`). Each
    /// then gets an error id, `x-error-id`, the negotiated format, a log event and a count, with
    /// `kind="status"` and a `type` named after its status (`not_found`, `method_not_allowed`,
    /// `bad_request`, `body_limit`, …). Off by default; the `AsgiServer` turns it on.
    ///
    /// An application's own answers are never rewritten. Only a response with no body, or a
    /// short `text/plain` one that begins as one of axum's rejection messages
    /// ([`REJECTIONS`](crate::REJECTIONS)), is; a JSON 404 of the application's passes byte for
    /// byte. The response's headers are kept (the `allow` of a 405, the `retry-after` of a 503),
    /// and a rejection's text, which axum writes for clients, is the problem's `detail`.
    ///
    /// A response that is not an error pays one status check for this.
    #[must_use]
    pub fn framework_errors(mut self, on: bool) -> Self {
        self.settings_mut().framework = on;
        self
    }

    /// The level client errors (4xx) are logged at: `WARN` by default, `INFO`, `DEBUG` or
    /// `TRACE` for a service whose clients err often, or `None` to count them without a log
    /// line. Server errors are always logged at `ERROR`. A level above `WARN` is taken as
    /// `WARN`: a client's mistake is never the server's error.
    #[must_use]
    pub fn client_error_level(mut self, level: Option<tracing::Level>) -> Self {
        self.settings_mut().client_level = level.map(|l| l.max(tracing::Level::WARN));
        self
    }

    /// At most `per_second` client-error lines a second for each kind of line (the same status,
    /// error type and route): 10 by default, `None` for every line. The lines left out of a
    /// second are summed up in one line when it ends, `N more like this in the last second`;
    /// `errors_total` counts every error either way. Server errors are always logged, each one.
    ///
    /// Without it, a client sending 404s as fast as it can writes a log line per request.
    #[must_use]
    pub fn client_error_lines_per_second(mut self, per_second: Option<NonZeroU32>) -> Self {
        self.settings_mut().client_lines = per_second.map(Throttle::new);
        self
    }

    /// Registers `errors_total{kind,type}` in a prometheus-client registry. `type` takes only
    /// the labels of registered handlers, `timeout`, `body_limit`, `overloaded`, `cancelled`,
    /// `panic`, `error_path_panic`, `other`, and with [`framework_errors`](Self::framework_errors)
    /// one label per status a framework answers, so the series stay bounded.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "errors",
            "Errors handled by the error layer, by kind and type",
            self.settings.errors.clone(),
        );
    }
}

impl Default for ErrorLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ErrorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorLayer")
            .field(
                "handlers",
                &self
                    .settings
                    .handlers
                    .iter()
                    .map(|h| h.label)
                    .collect::<Vec<_>>(),
            )
            .field("show_traceback", &self.settings.traceback.get())
            .field("framework_errors", &self.settings.framework)
            .field("client_error_level", &self.settings.client_level)
            .field(
                "client_error_lines_per_second",
                &self
                    .settings
                    .client_lines
                    .as_ref()
                    .map(Throttle::per_second),
            )
            .field("observers", &self.settings.observers.len())
            .field("notifiers", &self.settings.notifiers)
            .finish_non_exhaustive()
    }
}

/// A live `show_traceback` setting that several [`ErrorLayer`]s can share and that can change
/// while they run; see [`ErrorLayer::traceback_switch`].
#[derive(Clone, Debug)]
pub struct TracebackSwitch(Arc<AtomicBool>);

impl TracebackSwitch {
    /// A switch, initially `show`.
    #[must_use]
    pub fn new(show: bool) -> Self {
        Self(Arc::new(AtomicBool::new(show)))
    }

    /// Sets `show_traceback` for every layer that reads this switch.
    pub fn set(&self, show: bool) {
        self.0.store(show, Ordering::Relaxed);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for ErrorLayer {
    type Service = ErrorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorService::new(inner, self.settings.clone())
    }
}
