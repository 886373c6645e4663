//! The error path: from a failure to one logged, counted, notified and rendered response.

use std::{
    any::Any,
    error::Error as StdError,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use genro_envelope::{plumbing::Synthesized, RequestEnvelope};
use genro_notify::{Notification, RequestInfo, Severity};
use http::{header, HeaderName, HeaderValue, Response, StatusCode};

use crate::{
    backtrace::short_backtrace,
    body::RenderedBody,
    error::{chain_list, BoxError},
    layer::Settings,
    observer,
    problem::{render, Extra, Format, Problem},
    report::{CANCELLED, ERROR_PATH_PANIC, OTHER, PANIC},
    throttle::Verdict,
    Error, ErrorKind, ErrorReport,
};

/// The request's envelope, or what is needed to make one if an error comes (without an
/// [`EnvelopeLayer`](genro_envelope::EnvelopeLayer) outside, the success path makes none).
pub(crate) enum Subject {
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
pub(crate) struct Ctx {
    pub(crate) subject: Subject,
    pub(crate) accept: Option<HeaderValue>,
    pub(crate) grpc: bool,
    pub(crate) settings: Arc<Settings>,
}

pub(crate) enum Failure {
    App(Error),
    Service(BoxError),
    Panic {
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    },
    /// An error response the framework made without an error value (see `framework`).
    Status {
        status: StatusCode,
        /// Its `type` label, one per status.
        error_type: &'static str,
        headers: Vec<(HeaderName, HeaderValue)>,
        detail: Option<String>,
    },
}

impl Failure {
    /// A panic caught on this thread, with the location and backtrace its hook left, if any.
    pub(crate) fn panic(payload: &(dyn Any + Send)) -> Self {
        let caught = crate::panic::take();
        Self::Panic {
            message: panic_message(payload),
            location: caught.as_ref().and_then(|c| c.location.clone()),
            backtrace: caught.and_then(|c| c.backtrace),
        }
    }
}

pub(crate) use crate::panic::panic_message;

/// The error path of one request in progress, and what is needed to answer anyway if it panics.
pub(crate) struct Handling<B> {
    future: Pin<Box<dyn Future<Output = Response<B>> + Send>>,
    envelope: Arc<RequestEnvelope>,
    format: Format,
    settings: Arc<Settings>,
}

impl<B> Handling<B> {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Response<B>> {
        self.future.as_mut().poll(cx)
    }
}

/// Starts the error path for `failure`.
pub(crate) fn handle<B: RenderedBody>(ctx: Ctx, failure: Failure) -> Handling<B> {
    let Ctx {
        subject,
        accept,
        grpc,
        settings,
    } = ctx;
    let envelope = subject.envelope();
    let format = if grpc {
        Format::Grpc
    } else {
        Format::negotiate(accept.as_ref())
    };
    Handling {
        future: Box::pin(respond(envelope.clone(), format, settings.clone(), failure)),
        envelope,
        format,
        settings,
    }
}

/// The answer when the error path itself panicked: a plain 500 with the error id, logged and
/// counted, built without calling any user code but the body constructor.
pub(crate) fn fallback<B: RenderedBody>(handling: &Handling<B>, panic: &str) -> Response<B> {
    let envelope = &handling.envelope;
    genro_notify::request_event!(
        error,
        envelope,
        kind = ErrorKind::Panic.as_str(),
        error_type = ERROR_PATH_PANIC,
        status = 500u16,
        error = %panic,
        "error path panicked"
    );
    handling.settings.count(ErrorKind::Panic, ERROR_PATH_PANIC);
    rendered(
        &Problem::new(StatusCode::INTERNAL_SERVER_ERROR),
        handling.format,
        envelope,
        None,
        None,
    )
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
                    error_type: handler.label,
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
        if e.is::<genro_envelope::Cancelled>() {
            return Resolved {
                problem: Problem::new(StatusCode::SERVICE_UNAVAILABLE),
                error_type: CANCELLED,
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
        error_type: OTHER,
    }
}

/// `resolve`, with a panicking handler turned into a plain 500.
fn resolve_guarded(
    settings: &Settings,
    error: &(dyn StdError + 'static),
    status: Option<StatusCode>,
    envelope: &RequestEnvelope,
) -> Result<Resolved, String> {
    catch_unwind(AssertUnwindSafe(|| {
        resolve(settings, error, status, envelope)
    }))
    .map_err(|payload| panic_message(&*payload))
}

/// What a failure is, before any rule or observer saw it: its problem (or the panic of the
/// handler that was to render it), kind, chain, backtrace and the panic's location.
struct Classified {
    resolved: Result<Resolved, String>,
    kind: ErrorKind,
    chain: Vec<String>,
    backtrace: Option<String>,
    location: Option<String>,
}

/// Step 1: what kind of failure, and which problem answers it (the error handlers first, then
/// the errors the layer knows).
fn classify(settings: &Settings, envelope: &RequestEnvelope, failure: Failure) -> Classified {
    match failure {
        Failure::App(error) => Classified {
            resolved: resolve_guarded(settings, error.get_ref(), error.status(), envelope),
            kind: ErrorKind::Error,
            chain: chain_list(error.get_ref()),
            backtrace: error.backtrace_text(),
            location: None,
        },
        Failure::Service(error) => Classified {
            resolved: resolve_guarded(settings, &*error, None, envelope),
            kind: ErrorKind::Error,
            chain: chain_list(&*error),
            backtrace: None,
            location: None,
        },
        Failure::Panic {
            message,
            location,
            backtrace,
        } => Classified {
            resolved: Ok(Resolved {
                problem: Problem::new(StatusCode::INTERNAL_SERVER_ERROR),
                error_type: PANIC,
            }),
            kind: ErrorKind::Panic,
            chain: vec![message],
            backtrace,
            location,
        },
        Failure::Status {
            status,
            error_type,
            headers,
            detail,
        } => {
            let message = detail.clone().unwrap_or_else(|| {
                format!(
                    "answered {} {} without a body",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )
                .trim_end()
                .to_owned()
            });
            let mut problem = Problem::new(status);
            problem.detail = detail;
            problem.headers = headers;
            Classified {
                resolved: Ok(Resolved {
                    problem,
                    error_type,
                }),
                kind: ErrorKind::Status,
                chain: vec![message],
                backtrace: None,
                location: None,
            }
        }
    }
}

/// Step 2: the report observers and notifiers see, and the problem it is answered with. An
/// error handler that panicked makes it a 500 of type `error_path_panic`.
fn report(envelope: &Arc<RequestEnvelope>, classified: Classified) -> (ErrorReport, Problem) {
    let Classified {
        resolved,
        kind,
        chain,
        backtrace,
        location,
    } = classified;
    let mut message = chain.join(": ");
    let (resolved, kind) = match resolved {
        Ok(resolved) => (resolved, kind),
        Err(panic) => {
            message = format!("error handler panicked: {panic}; while handling: {message}");
            let resolved = Resolved {
                problem: Problem::new(StatusCode::INTERNAL_SERVER_ERROR),
                error_type: ERROR_PATH_PANIC,
            };
            (resolved, ErrorKind::Panic)
        }
    };
    let report = ErrorReport {
        envelope: envelope.clone(),
        kind,
        error_type: resolved.error_type,
        status: resolved.problem.status,
        message,
        chain,
        location,
        backtrace,
        critical: false,
        answer: std::sync::OnceLock::new(),
    };
    (report, resolved.problem)
}

/// Step 3: the application's `critical_when` rule; a rule that panics makes the error critical.
fn is_critical(settings: &Settings, report: &ErrorReport) -> bool {
    catch_unwind(AssertUnwindSafe(|| (settings.critical_when)(report))).unwrap_or_else(|payload| {
        let panic = panic_message(&*payload);
        tracing::error!(error_id = %report.envelope.short_id(), error = %panic, "critical_when rule panicked; the error counts as critical");
        settings.count(ErrorKind::Panic, ERROR_PATH_PANIC);
        true
    })
}

/// Step 4: the log line, the count, and the notification of a critical error.
fn publish(settings: &Settings, report: &ErrorReport) {
    log(report, settings);
    settings.count(report.kind, report.error_type);
    if report.critical && !settings.notifiers.is_empty() {
        settings.notifiers.send(notification(report));
    }
}

/// Step 6: the detail and traceback the answer shows: with `traceback` on, the message and the
/// backtrace; off, a 4xx's own detail only.
fn shown(
    settings: &Settings,
    report: &ErrorReport,
    problem: &Problem,
) -> (Option<String>, Option<String>) {
    let show = settings.traceback.get();
    let detail = if show {
        Some(
            problem
                .detail
                .clone()
                .unwrap_or_else(|| report.message.clone()),
        )
    } else if problem.status.is_server_error() {
        None
    } else {
        problem.detail.clone()
    };
    let traceback = show.then(|| match (&report.kind, &report.backtrace) {
        (ErrorKind::Panic, backtrace) => {
            let mut text = format!("panic: {}", report.message);
            if let Some(location) = &report.location {
                text = format!("{text}\nat {location}");
            }
            if let Some(backtrace) = backtrace {
                text = format!("{text}\n\n{backtrace}");
            }
            text
        }
        (_, Some(backtrace)) => backtrace.clone(),
        (_, None) => report.message.clone(),
    });
    (detail, traceback)
}

/// The answer to a failure, in its steps: classify, report, the critical rule, publish (log,
/// count, notify), the observers (a debugger may hold the request and choose its status), and
/// the rendered answer.
async fn respond<B: RenderedBody>(
    envelope: Arc<RequestEnvelope>,
    format: Format,
    settings: Arc<Settings>,
    failure: Failure,
) -> Response<B> {
    let settings = &*settings;
    let (mut report, problem) = report(&envelope, classify(settings, &envelope, failure));
    report.critical = is_critical(settings, &report);
    publish(settings, &report);

    // Step 5: the observers.
    let report = Arc::new(report);
    let panicked = observer::run(&settings.observers, &report, settings.observer_timeout).await;
    for _ in 0..panicked {
        settings.count(ErrorKind::Panic, ERROR_PATH_PANIC);
    }
    // An observer (a debugger) chose the status: the same error id, that status's problem.
    let problem = match report.answer.get() {
        Some(&chosen) if chosen != problem.status => Problem::new(chosen),
        _ => problem,
    };
    let (detail, traceback) = shown(settings, &report, &problem);
    rendered(
        &problem,
        format,
        &envelope,
        detail.as_deref(),
        traceback.as_deref(),
    )
}

fn rendered<B: RenderedBody>(
    problem: &Problem,
    format: Format,
    envelope: &RequestEnvelope,
    detail: Option<&str>,
    traceback: Option<&str>,
) -> Response<B> {
    let trace_id = envelope.trace_context().map(|t| t.trace_id().to_string());
    let rendered = render(
        problem,
        format,
        &Extra {
            error_id: &envelope.short_id(),
            trace_id: trace_id.as_deref(),
            detail,
            traceback,
        },
    );
    let mut response = Response::new(B::from_rendered(rendered.body));
    *response.status_mut() = rendered.status;
    *response.headers_mut() = rendered.headers;
    response.extensions_mut().insert(Synthesized);
    response
}

/// The `critical_error` notification of a report: the same request shape as the watchdog's
/// stuck-request notifications.
fn notification(report: &ErrorReport) -> Notification {
    let envelope = &report.envelope;
    let message = format!(
        "{} {} failed with {} ({}, error id {})",
        envelope.method(),
        envelope.route().unwrap_or("(no route)"),
        report.status.as_u16(),
        report.error_type,
        envelope.short_id(),
    );
    Notification::new("critical_error", Severity::Critical, message)
        .with_request(RequestInfo::from_envelope(envelope))
        .with_detail("error_id", envelope.short_id().to_string())
        .with_detail("error_type", report.error_type)
        .with_detail("kind", report.kind.as_str())
        .with_detail("status", report.status.as_u16().to_string())
        // One alert per error type and route per window, however many requests fail.
        .with_dedup_key(format!(
            "critical_error:{}:{}:{}",
            report.error_type,
            envelope.method(),
            envelope.route().unwrap_or("-")
        ))
}

fn log(report: &ErrorReport, settings: &Settings) {
    let envelope = &*report.envelope;
    // A backtrace tells where a server error came from; for a client error it is noise. The
    // log shows its frames from the panic to the error layer (the console's `attach --full`
    // has the whole).
    let short = report
        .backtrace
        .as_deref()
        .filter(|_| report.status.is_server_error())
        .map(|text| short_backtrace(text).map_or_else(|| text.to_owned(), |s| s.to_string()));
    let backtrace = short.as_deref();
    let location = report.location.as_deref();
    macro_rules! event {
        ($level:ident) => {
            genro_notify::request_event!(
                $level,
                envelope,
                kind = report.kind.as_str(),
                error_type = report.error_type,
                status = report.status.as_u16(),
                critical = report.critical,
                error = %report.message,
                location,
                backtrace,
                "request failed"
            )
        };
    }
    let level = if report.status.is_server_error() {
        tracing::Level::ERROR
    } else {
        // Nothing to do when no subscriber writes the level (a cheap, global check).
        let Some(level) = settings
            .client_level
            .filter(|&l| tracing::level_enabled!(l))
        else {
            return;
        };
        // A client's errors, as fast as it can send them, are summed up past a rate.
        if let Some(throttle) = &settings.client_lines {
            if throttle.admit(report, level) == Verdict::Suppress {
                return;
            }
        }
        level
    };
    match level {
        tracing::Level::ERROR => event!(error),
        tracing::Level::WARN => event!(warn),
        tracing::Level::INFO => event!(info),
        tracing::Level::DEBUG => event!(debug),
        tracing::Level::TRACE => event!(trace),
    }
}
