use std::sync::{Arc, OnceLock};

use genro_envelope::RequestEnvelope;
use http::StatusCode;

/// What went wrong, as the layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The inner service returned an error, or a handler returned an [`Error`](crate::Error).
    Error,
    /// The handler panicked, in `call` or while its future ran; or code on the error path
    /// itself (an error handler, a `critical_when` rule) panicked.
    Panic,
    /// The inner service answered with an error status by itself: with
    /// [`framework_errors`](crate::ErrorLayer::framework_errors) on, a bodiless error response
    /// or a known rejection (rendered like any error); otherwise, or with a body of the
    /// application's own, a 5xx (counted, not rendered).
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

/// The `type` label of an error the handlers and defaults did not claim.
pub const OTHER: &str = "other";
/// The `type` label of a request cancelled through its envelope
/// ([`RequestEnvelope::cancel`](genro_envelope::RequestEnvelope::cancel)).
pub const CANCELLED: &str = "cancelled";
/// The `type` label of a panic in the inner service.
pub const PANIC: &str = "panic";
/// The `type` label of a panic on the error path itself: in a registered error handler, the
/// `critical_when` rule, an observer, or rendering the response.
pub const ERROR_PATH_PANIC: &str = "error_path_panic";

/// Everything known about one handled error, given to [`Observer`](crate::Observer)s, to the
/// `critical_when` rule and (as a notification) to the notifiers. It is server-side
/// information: `message` and `backtrace` may hold internals and are never sent to the client
/// unless `show_traceback` is on.
#[derive(Debug)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The request's envelope; `envelope.short_id()` is the error id the client sees.
    pub envelope: Arc<RequestEnvelope>,
    /// Error or panic.
    pub kind: ErrorKind,
    /// The label the matching handler was registered with, a default (`timeout`,
    /// `body_limit`, `overloaded`, `cancelled`), `panic`, `error_path_panic`, or `other`: the `type` label of
    /// `errors_total`.
    pub error_type: &'static str,
    /// The status of the response.
    pub status: StatusCode,
    /// The error chain, or the panic message.
    pub message: String,
    /// Each error of the `source()` chain, outermost first (a panic: its message alone).
    pub chain: Vec<String>,
    /// Where a panic happened (`file:line:column`), when the panic hook
    /// ([`install_panic_hook`](crate::install_panic_hook)) saw it.
    pub location: Option<String>,
    /// The backtrace, when one was captured.
    pub backtrace: Option<String>,
    /// Whether the `critical_when` rule flagged it.
    pub critical: bool,
    pub(crate) answer: OnceLock<StatusCode>,
}

impl ErrorReport {
    /// Answers the request with `status` instead of the status it would get (same error id,
    /// logged and counted as it was): for an [`Observer`](crate::Observer) such as a debugger
    /// that releases a held request with a status of its choosing, to try a client's error
    /// handling. The first call wins; returns whether this one did.
    pub fn answer_with(&self, status: StatusCode) -> bool {
        self.answer.set(status).is_ok()
    }
}
