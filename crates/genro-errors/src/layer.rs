use std::{
    any::Any,
    convert::Infallible,
    error::Error as StdError,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use genro_envelope::RequestEnvelope;
use http::{header, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    body::RenderedBody,
    error::{chain_text, BoxError, Carried},
    problem::{render, Extra, Format, Problem},
    Error,
};

/// What went wrong, as the layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The inner service returned an error, or a handler returned an [`Error`].
    Error,
    /// The handler panicked, in `call` or while its future ran.
    Panic,
    /// The inner service answered with a 5xx status by itself (counted, not rendered).
    Status,
}

impl ErrorKind {
    /// `"error"`, `"panic"` or `"status"`: the `kind` label of `errors_total`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Panic => "panic",
            Self::Status => "status",
        }
    }
}

/// Everything known about one handled error, given to [`Observer`]s and to the `is_critical`
/// policy. It is server-side information: `message` and `backtrace` may hold internals and are
/// never sent to the client unless `show_traceback` is on.
#[derive(Debug)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The request's envelope; `envelope.short_id()` is the error id the client sees.
    pub envelope: Arc<RequestEnvelope>,
    /// Error or panic.
    pub kind: ErrorKind,
    /// The registered type that matched, a default (`timeout`, `body_limit`, `overloaded`),
    /// `panic`, or `other`.
    pub error_type: &'static str,
    /// The status of the response.
    pub status: StatusCode,
    /// The error chain, or the panic message.
    pub message: String,
    /// The backtrace, when one was captured.
    pub backtrace: Option<String>,
    /// Whether the `is_critical` policy flagged it.
    pub critical: bool,
}

/// The future an [`Observer`] returns.
pub type ObserveFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Receives every handled error: the critical-error notifier and the debug console's hold are
/// observers. The response waits for the observers, for at most the layer's observer timeout.
///
/// Any `Fn(Arc<ErrorReport>) -> impl Future<Output = ()>` closure is an observer.
pub trait Observer: Send + Sync + 'static {
    /// Called once per handled error.
    fn observe(&self, report: Arc<ErrorReport>) -> ObserveFuture;
}

impl<F, Fut> Observer for F
where
    F: Fn(Arc<ErrorReport>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn observe(&self, report: Arc<ErrorReport>) -> ObserveFuture {
        Box::pin(self(report))
    }
}

type Render = dyn Fn(&(dyn StdError + 'static), &RequestEnvelope) -> Option<Problem> + Send + Sync;
type Critical = dyn Fn(&ErrorReport) -> bool + Send + Sync;

struct Handler {
    type_name: &'static str,
    render: Arc<Render>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
    r#type: &'static str,
}

#[derive(Clone)]
struct Settings {
    handlers: Vec<Arc<Handler>>,
    show_traceback: Arc<AtomicBool>,
    observers: Vec<Arc<dyn Observer>>,
    observer_timeout: Duration,
    is_critical: Arc<Critical>,
    errors: Family<ErrorLabels, Counter>,
}

/// A [`Layer`] that handles every error and panic of the inner service in one place.
///
/// It turns into one consistent response:
/// - errors returned by the inner service (`S::Error: Into<BoxError>`);
/// - panics, in `call` or in the response future: the client gets a real 500, not a reset
///   connection;
/// - an [`Error`] returned by a handler (with the `axum` feature, through `IntoResponse`).
///
/// For each error it picks the handler registered for the error's type (searched along the
/// `source()` chain), or a default: timeouts → 504, body limit → 413, load shed → 503 with
/// `Retry-After`, anything else → 500. It logs one event with `error_id` (the envelope's short
/// id), the ids, method, path, route, error type and backtrace; counts
/// `errors_total{kind,type}`; runs the observers; and renders the [`Problem`] as
/// `application/problem+json` (RFC 9457), HTML or text by content negotiation, with an
/// `x-error-id` header. A gRPC request gets a trailers-only response whose `grpc-status` maps
/// the HTTP status and whose `grpc-message` carries the error id.
///
/// Panic payloads, Debug output and backtraces are logged, never sent, unless
/// [`show_traceback`](Self::show_traceback) is on.
#[derive(Clone)]
pub struct ErrorLayer {
    settings: Arc<Settings>,
}

impl ErrorLayer {
    /// A layer with the default handlers, no observers and `show_traceback` off.
    #[must_use]
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                handlers: Vec::new(),
                show_traceback: Arc::new(AtomicBool::new(false)),
                observers: Vec::new(),
                observer_timeout: Duration::from_secs(2),
                is_critical: Arc::new(|r: &ErrorReport| {
                    r.kind == ErrorKind::Panic
                        || (r.error_type == "other" && r.status.is_server_error())
                }),
                errors: Family::default(),
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Renders errors of type `E` (found anywhere along the `source()` chain) with `render`.
    ///
    /// Handlers are tried in the order they were added; the first whose type matches wins. The
    /// type's name becomes a value of the `type` label of `errors_total`.
    #[must_use]
    pub fn handler<E, F>(mut self, render: F) -> Self
    where
        E: StdError + 'static,
        F: Fn(&E, &RequestEnvelope) -> Problem + Send + Sync + 'static,
    {
        let render: Arc<Render> = Arc::new(
            move |error: &(dyn StdError + 'static), envelope: &RequestEnvelope| {
                error.downcast_ref::<E>().map(|e| render(e, envelope))
            },
        );
        self.settings_mut().handlers.push(Arc::new(Handler {
            type_name: std::any::type_name::<E>(),
            render,
        }));
        self
    }

    /// Like [`handler`](Self::handler), for a handler that builds the whole response itself
    /// (see [`Problem::from_response`]).
    #[must_use]
    pub fn handler_response<E, F>(self, respond: F) -> Self
    where
        E: StdError + 'static,
        F: Fn(&E, &RequestEnvelope) -> Response<bytes::Bytes> + Send + Sync + 'static,
    {
        self.handler::<E, _>(move |error, envelope| {
            Problem::from_response(respond(error, envelope))
        })
    }

    /// Whether responses include the error's detail and its backtrace or panic message. Off by
    /// default; turn it on only where the clients are the developers.
    #[must_use]
    pub fn show_traceback(self, show: bool) -> Self {
        self.settings.show_traceback.store(show, Ordering::Relaxed);
        self
    }

    /// A switch that turns `show_traceback` on and off while the layer runs (hot reload).
    #[must_use]
    pub fn traceback_switch(&self) -> TracebackSwitch {
        TracebackSwitch(self.settings.show_traceback.clone())
    }

    /// Calls `observer` for every handled error.
    #[must_use]
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.settings_mut().observers.push(Arc::new(observer));
        self
    }

    /// The longest the response waits for the observers, all together. Default 2 s.
    #[must_use]
    pub fn observer_timeout(mut self, limit: Duration) -> Self {
        self.settings_mut().observer_timeout = limit;
        self
    }

    /// Which errors are critical (the report's `critical` flag, for notifiers). Default: panics,
    /// and 5xx errors that no registered handler claimed.
    #[must_use]
    pub fn is_critical(
        mut self,
        policy: impl Fn(&ErrorReport) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settings_mut().is_critical = Arc::new(policy);
        self
    }

    /// Registers `errors_total{kind,type}` in a prometheus-client registry. `type` takes only
    /// registered handler type names, `timeout`, `body_limit`, `overloaded`, `panic` and
    /// `other`, so the series stay bounded.
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
                    .map(|h| h.type_name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "show_traceback",
                &self.settings.show_traceback.load(Ordering::Relaxed),
            )
            .field("observers", &self.settings.observers.len())
            .finish_non_exhaustive()
    }
}

/// Turns `show_traceback` on or off on a running [`ErrorLayer`]; see
/// [`ErrorLayer::traceback_switch`].
#[derive(Clone, Debug)]
pub struct TracebackSwitch(Arc<AtomicBool>);

impl TracebackSwitch {
    /// Sets `show_traceback`.
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
    type Service = Errors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Errors {
            inner,
            settings: self.settings.clone(),
            not_ready: None,
        }
    }
}

/// The service made by [`ErrorLayer`].
///
/// It never fails: its error type is `Infallible`, so it fits where axum and hyper want an
/// infallible service. An error from the inner service's `poll_ready` is kept and answered, as an
/// error response, to the next call.
pub struct Errors<S> {
    inner: S,
    settings: Arc<Settings>,
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for Errors<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
            not_ready: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Errors<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Errors")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The request's envelope, or what is needed to make one if an error comes (without an
/// [`EnvelopeLayer`](genro_envelope::EnvelopeLayer) outside, the success path makes none).
enum Subject {
    Envelope(Arc<RequestEnvelope>),
    Request(http::Method, http::Uri),
}

impl Subject {
    fn envelope(self) -> Arc<RequestEnvelope> {
        match self {
            Self::Envelope(envelope) => envelope,
            Self::Request(method, uri) => Arc::new(RequestEnvelope::new(method, uri)),
        }
    }
}

/// What the layer keeps of the request, for the error path only.
struct Ctx {
    subject: Subject,
    accept: Option<HeaderValue>,
    grpc: bool,
    settings: Arc<Settings>,
}

enum Failure {
    App(Error),
    Service(BoxError),
    Panic(String),
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Errors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: RenderedBody,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.not_ready.is_none() {
            if let Err(error) = std::task::ready!(self.inner.poll_ready(cx)) {
                self.not_ready = Some(error.into());
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let subject = match RequestEnvelope::from_request(&req) {
            Some(envelope) => Subject::Envelope(envelope.clone()),
            None => Subject::Request(req.method().clone(), req.uri().clone()),
        };
        let ctx = Ctx {
            subject,
            accept: req.headers().get(header::ACCEPT).cloned(),
            grpc: genro_envelope::is_grpc(req.headers()),
            settings: self.settings.clone(),
        };
        if let Some(error) = self.not_ready.take() {
            return ResponseFuture {
                state: State::Handling {
                    future: Box::pin(handle(ctx, Failure::Service(error))),
                },
                ctx: None,
            };
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => ResponseFuture {
                state: State::Running { future },
                ctx: Some(ctx),
            },
            Err(payload) => ResponseFuture {
                state: State::Handling {
                    future: Box::pin(handle(ctx, Failure::Panic(panic_text(&*payload)))),
                },
                ctx: None,
            },
        }
    }
}

type Handling<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Running { #[pin] future: F },
        Handling { future: Handling<B> },
    }
}

pin_project! {
    /// Response future of [`Errors`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        ctx: Option<Ctx>,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: RenderedBody,
{
    type Output = Result<Response<B>, Infallible>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let failure = match this.state.project() {
                StateProj::Handling { future } => return future.as_mut().poll(cx).map(Ok),
                StateProj::Running { future } => {
                    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Ok(response))) => {
                            // The common case: no carried error. Extensions of a plain response
                            // are empty, so this costs one check.
                            let carried = if response.extensions().is_empty() {
                                None
                            } else {
                                response
                                    .extensions()
                                    .get::<Carried>()
                                    .and_then(Carried::take)
                            };
                            match carried {
                                Some(error) => Failure::App(error),
                                None => {
                                    if response.status().is_server_error() {
                                        if let Some(ctx) = this.ctx.as_ref() {
                                            ctx.settings
                                                .errors
                                                .get_or_create(&ErrorLabels {
                                                    kind: ErrorKind::Status.as_str(),
                                                    r#type: "other",
                                                })
                                                .inc();
                                        }
                                    }
                                    return Poll::Ready(Ok(response));
                                }
                            }
                        }
                        Ok(Poll::Ready(Err(error))) => Failure::Service(error.into()),
                        Err(payload) => Failure::Panic(panic_text(&*payload)),
                    }
                }
            };
            let ctx = this.ctx.take().expect("a running future has its context");
            self.as_mut().project().state.set(State::Handling {
                future: Box::pin(handle(ctx, failure)),
            });
        }
    }
}

struct Resolved {
    problem: Problem,
    error_type: &'static str,
}

fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

fn resolve(
    settings: &Settings,
    error: &(dyn StdError + 'static),
    status: Option<StatusCode>,
    envelope: &RequestEnvelope,
) -> Resolved {
    for e in chain(error) {
        for handler in &settings.handlers {
            if let Some(problem) = (handler.render)(e, envelope) {
                return Resolved {
                    problem,
                    error_type: handler.type_name,
                };
            }
        }
    }
    for e in chain(error) {
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            return Resolved {
                problem: Problem::new(StatusCode::GATEWAY_TIMEOUT),
                error_type: "timeout",
            };
        }
        if e.is::<http_body_util::LengthLimitError>() {
            return Resolved {
                problem: Problem::new(StatusCode::PAYLOAD_TOO_LARGE),
                error_type: "body_limit",
            };
        }
        if e.is::<tower::load_shed::error::Overloaded>() {
            let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE)
                .header(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Resolved {
                problem,
                error_type: "overloaded",
            };
        }
    }
    Resolved {
        problem: Problem::new(status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)),
        error_type: "other",
    }
}

async fn handle<B: RenderedBody>(ctx: Ctx, failure: Failure) -> Response<B> {
    let Ctx {
        subject,
        accept,
        grpc,
        settings,
    } = ctx;
    let settings = &settings;
    let envelope = &subject.envelope();
    let (resolved, kind, message, backtrace) = match &failure {
        Failure::App(error) => (
            resolve(settings, error.get_ref(), error.status(), envelope),
            ErrorKind::Error,
            chain_text(error.get_ref()),
            error.backtrace_text(),
        ),
        Failure::Service(error) => (
            resolve(settings, &**error, None, envelope),
            ErrorKind::Error,
            chain_text(&**error),
            None,
        ),
        Failure::Panic(text) => (
            Resolved {
                problem: Problem::new(StatusCode::INTERNAL_SERVER_ERROR),
                error_type: "panic",
            },
            ErrorKind::Panic,
            text.clone(),
            None,
        ),
    };
    drop(failure);
    let Resolved {
        problem,
        error_type,
    } = resolved;
    let status = problem.status;
    let mut report = ErrorReport {
        envelope: envelope.clone(),
        kind,
        error_type,
        status,
        message,
        backtrace,
        critical: false,
    };
    report.critical = (settings.is_critical)(&report);
    log(&report);
    settings
        .errors
        .get_or_create(&ErrorLabels {
            kind: kind.as_str(),
            r#type: error_type,
        })
        .inc();

    let report = Arc::new(report);
    if !settings.observers.is_empty() {
        let observers = settings.observers.iter().map(|o| o.observe(report.clone()));
        let all = async {
            for observer in observers {
                observer.await;
            }
        };
        if tokio::time::timeout(settings.observer_timeout, all)
            .await
            .is_err()
        {
            tracing::warn!(error_id = %envelope.short_id(), limit = ?settings.observer_timeout, "error observers timed out");
        }
    }

    let show = settings.show_traceback.load(Ordering::Relaxed);
    let detail = if show {
        Some(
            problem
                .detail
                .clone()
                .unwrap_or_else(|| report.message.clone()),
        )
    } else if status.is_server_error() {
        None
    } else {
        problem.detail.clone()
    };
    let traceback = show.then(|| match (&report.kind, &report.backtrace) {
        (ErrorKind::Panic, _) => format!("panic: {}", report.message),
        (_, Some(backtrace)) => backtrace.clone(),
        (_, None) => report.message.clone(),
    });
    let format = if grpc {
        Format::Grpc
    } else {
        Format::negotiate(accept.as_ref())
    };
    let short_id = envelope.short_id();
    let rendered = render(
        &problem,
        format,
        &Extra {
            error_id: &short_id,
            detail: detail.as_deref(),
            traceback: traceback.as_deref(),
        },
    );
    let mut response = Response::new(B::from_rendered(rendered.body));
    *response.status_mut() = rendered.status;
    *response.headers_mut() = rendered.headers;
    response
}

fn log(report: &ErrorReport) {
    let envelope = &report.envelope;
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                error_id = %envelope.short_id(),
                request_id = %envelope.internal_id().hyphenated(),
                external_id = envelope.external_id(),
                method = %envelope.method(),
                path = envelope.path(),
                route = envelope.route(),
                kind = report.kind.as_str(),
                error_type = report.error_type,
                status = report.status.as_u16(),
                critical = report.critical,
                error = %report.message,
                backtrace = report.backtrace.as_deref(),
                "request failed"
            )
        };
    }
    if report.status.is_server_error() {
        event!(error);
    } else {
        event!(warn);
    }
}
