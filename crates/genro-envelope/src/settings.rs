//! What an envelope layer does with each request, shared by its service and its response
//! future: the id header it reads and writes, and the envelope it attaches.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Request, Response};
use prometheus_client::metrics::counter::Counter;

use crate::{
    client::client_from,
    envelope::{RouteName, Shared, TraceStart},
    id::Refusal,
    trace_context::{Traceparent, MAX_TRACESTATE_LEN, TRACEPARENT, TRACESTATE},
    RequestEnvelope,
};

/// What [`attach`](crate::plumbing::attach) did: the request's envelope, and whether the caller must write the response
/// id.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attached {
    /// The request's envelope (the one it already had, or the one just made).
    pub envelope: Arc<RequestEnvelope>,
    /// True when [`attach`](crate::plumbing::attach) made the envelope and the layer writes ids (its
    /// [`ResponseId`](crate::ResponseId) is not `None`): then the caller writes the id header with
    /// [`write_response_id`](crate::plumbing::write_response_id). One request gets one id header, written by the layer that made its
    /// envelope.
    pub writes_response_id: bool,
}

/// The header read for the external id and written on the response, unless configured otherwise.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Which id [`EnvelopeLayer`](crate::EnvelopeLayer) writes in the response's id header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResponseId {
    /// The client's external id when it sent a valid one, otherwise the internal id. This lets a
    /// caller correlate by the id it chose, and still gives every response an id.
    #[default]
    EchoExternal,
    /// Always the internal id.
    Internal,
    /// No id header is written.
    None,
}

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) header: HeaderName,
    pub(crate) response_id: ResponseId,
    pub(crate) invalid: Counter,
    pub(crate) keep_headers: bool,
    pub(crate) read_traceparent: bool,
    pub(crate) start_traces: bool,
    pub(crate) invalid_traceparent: Counter,
    /// What every envelope made here refers to ([`EnvelopeLayer::share`](crate::EnvelopeLayer::share)).
    pub(crate) shared: Option<Shared>,
}

impl Settings {
    fn external_id<B>(&self, req: &Request<B>) -> Option<HeaderValue> {
        let value = req.headers().get(&self.header)?;
        match Refusal::of(value.as_bytes()) {
            None => Some(value.clone()),
            Some(refusal) => {
                self.invalid.inc();
                // The value itself is hostile input: only its length and the reason are logged.
                tracing::debug!(
                    header = %self.header,
                    len = value.len(),
                    reason = refusal.reason(),
                    "dropped an invalid external request id"
                );
                None
            }
        }
    }

    /// The trace `req` continues (its valid `traceparent`), or starts, or none.
    fn trace<B>(&self, req: &Request<B>) -> Option<TraceStart> {
        // The span an OpenTelemetry layer started for the request: its ids are the ones exported.
        #[cfg(feature = "opentelemetry")]
        if let Some(joined) = req.extensions().get::<crate::trace_context::JoinedSpan>() {
            let state = joined.parent_id.and_then(|_| tracestate(req.headers()));
            return Some(TraceStart::Joined(*joined, state));
        }
        if !self.read_traceparent {
            return self.start_traces.then_some(TraceStart::Start);
        }
        let Some(value) = req.headers().get(TRACEPARENT) else {
            return self.start_traces.then_some(TraceStart::Start);
        };
        match Traceparent::parse(value.as_bytes()) {
            Ok(parent) => Some(TraceStart::Continue(parent, tracestate(req.headers()))),
            Err(why) => {
                self.invalid_traceparent.inc();
                tracing::debug!(
                    len = value.len(),
                    reason = why.reason(),
                    "dropped an invalid traceparent"
                );
                self.start_traces.then_some(TraceStart::Start)
            }
        }
    }

    /// Gives `req` an envelope, unless it has one. Returns the request's envelope, and whether
    /// the caller writes the response id: only the layer that made the envelope does (one
    /// request, one id header), and only when ids are written at all.
    pub(crate) fn attach<B>(&self, req: &mut Request<B>) -> Attached {
        if let Some(envelope) = RequestEnvelope::from_request(req) {
            return Attached {
                envelope: envelope.clone(),
                writes_response_id: false,
            };
        }
        let envelope = Arc::new(RequestEnvelope::assemble(
            req.method().clone(),
            req.uri().clone(),
            req.version(),
            client_from(req.extensions()),
            self.external_id(req),
            RouteName::from_extensions(req.extensions()),
            self.keep_headers.then(|| Box::new(req.headers().clone())),
            self.trace(req),
            self.shared.clone(),
        ));
        record_on_span(&envelope);
        req.extensions_mut().insert(envelope.clone());
        Attached {
            envelope,
            writes_response_id: self.response_id != ResponseId::None,
        }
    }

    /// Writes the id header on `response`, unless the response already has one.
    pub(crate) fn write_response_id<B>(
        &self,
        response: &mut Response<B>,
        envelope: &RequestEnvelope,
    ) {
        if let http::header::Entry::Vacant(slot) = response.headers_mut().entry(&self.header) {
            if let Some(value) = response_id_value(self, envelope) {
                slot.insert(value);
            }
        }
    }
}

/// The value of the id header written on the response.
///
/// Marked sensitive: over HTTP/2 (and HTTP/3) it is sent as a literal that is never indexed
/// in HPACK's dynamic table. A request id is new on every response, so indexing it would never
/// save a byte; it would push the headers that do repeat (`content-type`, `server`, cookies)
/// out of the table, and h2's encoder would compare each new id with every id already in it
/// (about 4,000 instructions a response, measured with `benches/loopback.sh`'s HTTP/2 pass).
/// HTTP/1 ignores the mark.
pub(crate) fn response_id_value(
    settings: &Settings,
    envelope: &RequestEnvelope,
) -> Option<HeaderValue> {
    let mut value = match settings.response_id {
        ResponseId::None => return None,
        ResponseId::EchoExternal => envelope
            .external_id_header()
            .cloned()
            .unwrap_or_else(|| internal_header_value(envelope)),
        ResponseId::Internal => internal_header_value(envelope),
    };
    value.set_sensitive(true);
    Some(value)
}

fn record_on_span(envelope: &RequestEnvelope) {
    // No subscriber was ever installed: there is no span to record on (one atomic load).
    if !tracing::dispatcher::has_been_set() {
        return;
    }
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record(
        "request_id",
        tracing::field::display(envelope.internal_id().hyphenated()),
    );
    if let Some(external) = envelope.external_id() {
        span.record("external_id", external);
    }
    if let Some(trace) = envelope.trace_context() {
        span.record("trace_id", tracing::field::display(trace.trace_id()));
    }
}

/// The `tracestate` that goes with a valid `traceparent`: several headers are one list (the
/// spec's rule); one longer than [`MAX_TRACESTATE_LEN`] is dropped whole.
fn tracestate(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(TRACESTATE).iter();
    let first = values.next()?;
    let joined = match values.next() {
        None => first.clone(),
        Some(second) => {
            let mut text = first.as_bytes().to_vec();
            for value in std::iter::once(second).chain(values) {
                text.push(b',');
                text.extend_from_slice(value.as_bytes());
            }
            HeaderValue::from_bytes(&text).ok()?
        }
    };
    (joined.len() <= MAX_TRACESTATE_LEN).then_some(joined)
}

fn internal_header_value(envelope: &RequestEnvelope) -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = envelope.internal_id().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a hyphenated uuid is a valid header value")
}
