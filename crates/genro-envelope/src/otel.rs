//! The request's span in an OpenTelemetry trace (feature `opentelemetry`).
//!
//! A tracing-opentelemetry subscriber turns each tracing span into an OpenTelemetry span, but
//! it cannot know that a request came with a `traceparent`: without help, every request starts
//! a trace of its own and the client's trace stops at the server. [`continue_trace`] gives the
//! request's span the client's span as its parent, so the server's spans join the client's
//! trace. It must run before the span is first entered (tracing-opentelemetry starts the span
//! then). [`join_trace`] does that, and for a request without a `traceparent` it hands the trace
//! OpenTelemetry starts to the envelope, so that the trace id in logs and error bodies is the
//! exported one; genro-server calls it where it makes each request's span.
//!
//! tracing-opentelemetry is the tracing project's own bridge to OpenTelemetry; the
//! `opentelemetry` crate is the OpenTelemetry project's API. Both come in only with this
//! feature.

use http::{HeaderMap, Request};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::trace_context::{JoinedSpan, Traceparent, MAX_TRACESTATE_LEN, TRACEPARENT, TRACESTATE};

/// Makes the client's span (the valid `traceparent` in `headers`, with its `tracestate`) the
/// parent of `span`. Returns the client's trace id when it did; `None` when there is no valid
/// `traceparent`, no tracing-opentelemetry layer, or `span` was already entered.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert(
///     "traceparent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
/// );
/// let span = tracing::info_span!("request");
/// // No tracing-opentelemetry layer is installed here, so nothing is joined.
/// assert_eq!(genro_envelope::otel::continue_trace(&span, &headers), None);
/// ```
#[allow(clippy::must_use_candidate)] // called for its effect; the answer is for callers that care
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) -> Option<crate::TraceId> {
    set_parent(span, headers).map(|parent| parent.trace_id)
}

/// What [`continue_trace`] does, returning the client's `traceparent` it made the parent.
fn set_parent(span: &tracing::Span, headers: &HeaderMap) -> Option<Traceparent> {
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|v| Traceparent::parse(v.as_bytes()).ok())?;
    let state = headers
        .get(TRACESTATE)
        .filter(|v| v.len() <= MAX_TRACESTATE_LEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceState>().ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id.0),
        SpanId::from_bytes(parent.parent_id.0),
        TraceFlags::new(parent.flags),
        true,
        state,
    );
    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
        .ok()
        .map(|()| parent)
}

/// [`continue_trace`] for `req`'s span, then the span (started here) is handed to the envelope
/// ([`RequestEnvelope::trace_context`](crate::RequestEnvelope::trace_context)): its trace id and
/// span id are the exported ones, so logs, error bodies, the webhook's child `traceparent` and
/// the exported spans name one trace, whether the client sent a `traceparent` or not. Returns
/// the trace `span` is in, `None` without a tracing-opentelemetry layer. Call it before `span`
/// is first entered, and before the envelope layer sees `req`.
pub fn join_trace<B>(span: &tracing::Span, req: &mut Request<B>) -> Option<crate::TraceId> {
    let parent_id = set_parent(span, req.headers()).map(|parent| parent.parent_id);
    let context = span.context();
    let otel = context.span();
    let started = otel.span_context();
    if !started.is_valid() {
        return None;
    }
    let trace_id = crate::TraceId(started.trace_id().to_bytes());
    req.extensions_mut().insert(JoinedSpan {
        trace_id,
        span_id: crate::SpanId(started.span_id().to_bytes()),
        parent_id,
        flags: started.trace_flags().to_u8(),
    });
    Some(trace_id)
}
