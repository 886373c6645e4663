use std::{collections::BTreeMap, fmt, time::SystemTime};

use genro_envelope::{plumbing::truncated, RequestEnvelope};
use serde::Serialize;

/// How serious a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Past the warning threshold (`timeout`): logged at warn level.
    Warning,
    /// Past the critical threshold: logged at error level, and notified.
    Critical,
}

impl Severity {
    /// `"warning"` or `"critical"`: the metric label and the JSON value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The longest request path a report or a log line carries, in bytes; a longer one is cut
/// visibly. The path comes from the client, so it is bounded wherever it is repeated.
pub const MAX_REPORTED_PATH: usize = 512;

/// What a report says about one request: a copy of its envelope's fields at the time of the
/// report. Stuck-request reports and critical-error reports carry the same shape, and their log
/// lines the same fields (see [`request_event!`](crate::request_event)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The internal id (UUIDv7, hyphenated).
    pub internal_id: String,
    /// The error id shown to users: the last eight hex digits of the internal id.
    pub short_id: String,
    /// The validated external id, when the client sent one.
    pub external_id: Option<String>,
    /// The request method.
    pub method: String,
    /// The request path, without the query string (where tokens tend to live), cut to
    /// [`MAX_REPORTED_PATH`] bytes.
    pub path: String,
    /// The route template, when a layer that knows it set it.
    pub route: Option<String>,
    /// Age of the request, in milliseconds.
    pub age_ms: u64,
    /// Where the request is: `handling`, `streaming`, `upgraded`.
    pub phase: String,
    /// The client's socket address.
    pub client: Option<String>,
    /// What the handler annotated the envelope with.
    pub annotations: BTreeMap<String, String>,
    /// The W3C trace the request is part of (32 hex digits), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The `traceparent` of a call made about the request (the webhook's POST): its trace,
    /// with the request's span as the parent. Not part of the JSON body.
    #[serde(skip)]
    pub traceparent: Option<String>,
}

impl RequestInfo {
    /// A copy of `envelope`'s fields, with its age as of now.
    #[must_use]
    pub fn from_envelope(envelope: &RequestEnvelope) -> Self {
        Self {
            internal_id: envelope.internal_id_string(),
            short_id: envelope.short_id().to_string(),
            external_id: envelope.external_id().map(str::to_owned),
            method: envelope.method().to_string(),
            path: truncated(envelope.path(), MAX_REPORTED_PATH).into_owned(),
            route: envelope.route().map(str::to_owned),
            age_ms: u64::try_from(envelope.age().as_millis()).unwrap_or(u64::MAX),
            phase: envelope.phase().to_string(),
            client: envelope.client().map(|c| c.to_string()),
            annotations: envelope.annotations().into_iter().collect(),
            trace_id: envelope.trace_context().map(|t| t.trace_id().to_string()),
            traceparent: envelope
                .trace_context()
                .and_then(|t| t.child_traceparent().to_str().ok().map(str::to_owned)),
        }
    }
}

/// An alert for a [`Notifier`](crate::Notifier): a stuck request, or a critical error reported by
/// another layer. Serialises to the JSON body that `WebhookNotifier` (feature `webhook`)
/// posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Notification {
    /// What happened: `"stuck_request"`, `"critical_error"`, or a kind of the sender's.
    pub kind: String,
    /// How serious it is.
    pub severity: Severity,
    /// One line for people.
    pub message: String,
    /// Milliseconds since the Unix epoch when the notification was made.
    pub timestamp_ms: u64,
    /// The request concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestInfo>,
    /// Further fields (error type, error id, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Notifications with the same key are sent once per de-duplication window.
    #[serde(skip)]
    pub dedup_key: String,
}

impl Notification {
    /// A notification of `kind` with a message; its de-duplication key is `kind` and `message`.
    #[must_use]
    pub fn new(kind: impl Into<String>, severity: Severity, message: impl Into<String>) -> Self {
        let kind = kind.into();
        let message = message.into();
        Self {
            dedup_key: format!("{kind}:{message}"),
            kind,
            severity,
            message,
            timestamp_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            request: None,
            details: BTreeMap::new(),
        }
    }

    /// The notification the watchdog sends for a request past its critical threshold.
    #[must_use]
    pub fn stuck_request(info: RequestInfo) -> Self {
        let message = format!(
            "request {} {} stuck for {}s ({})",
            info.method,
            info.route.as_deref().unwrap_or(&info.path),
            info.age_ms / 1000,
            info.phase
        );
        let mut n = Self::new("stuck_request", Severity::Critical, message);
        n.dedup_key = format!("stuck_request:{}", info.internal_id);
        n.request = Some(info);
        n
    }

    /// Attaches the request concerned.
    #[must_use]
    pub fn with_request(mut self, info: RequestInfo) -> Self {
        self.request = Some(info);
        self
    }

    /// Adds a detail field.
    #[must_use]
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Sets the de-duplication key.
    #[must_use]
    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = key.into();
        self
    }
}
