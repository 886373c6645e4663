//! What the console shows of a request: its envelope as protocol messages, with secrets masked.

use std::sync::Arc;

use genro_envelope::RequestEnvelope;
use http::HeaderName;

use crate::protocol::{RequestDetail, RequestSummary};

/// What a masked header value is shown as.
pub const MASKED: &str = "<masked>";

/// Headers always masked: credentials and session cookies.
pub const ALWAYS_MASKED: [HeaderName; 4] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
    http::header::SET_COOKIE,
];

pub(crate) fn summary(envelope: &RequestEnvelope) -> RequestSummary {
    RequestSummary {
        id: envelope.short_id().to_string(),
        method: envelope.method().to_string(),
        target: envelope
            .route()
            .map_or_else(|| envelope.path().to_owned(), str::to_owned),
        age_s: envelope.age().as_secs_f64(),
        phase: envelope.phase().to_string(),
        annotations: envelope.annotations().len(),
    }
}

pub(crate) fn detail(envelope: &Arc<RequestEnvelope>, masked: &[HeaderName]) -> RequestDetail {
    let headers = envelope.headers().map(|headers| {
        headers
            .iter()
            .map(|(name, value)| {
                let shown = if ALWAYS_MASKED.contains(name) || masked.contains(name) {
                    MASKED.to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), shown)
            })
            .collect()
    });
    RequestDetail {
        id: envelope.short_id().to_string(),
        internal_id: envelope.internal_id_string(),
        external_id: envelope.external_id().map(str::to_owned),
        trace_id: envelope.trace_context().map(|t| t.trace_id().to_string()),
        method: envelope.method().to_string(),
        path: envelope.path().to_owned(),
        route: envelope.route().map(str::to_owned),
        version: format!("{:?}", envelope.version()),
        client: envelope.client().map(|c| c.to_string()),
        age_s: envelope.age().as_secs_f64(),
        phase: envelope.phase().to_string(),
        annotations: envelope.annotations(),
        headers,
        waiting_on: None,
    }
}
