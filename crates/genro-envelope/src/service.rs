use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use crate::{
    envelope::{client_from, RouteName},
    future::ResponseFuture,
    id::Refusal,
    layer::{ResponseId, Settings},
    plumbing::Attached,
    RequestEnvelope,
};

/// The service made by [`EnvelopeLayer`](crate::EnvelopeLayer).
pub struct EnvelopeService<S> {
    pub(crate) inner: S,
    pub(crate) settings: Arc<Settings>,
}

impl<S> EnvelopeService<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for EnvelopeService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for EnvelopeService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EnvelopeService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let attached = self.settings.attach(&mut req);
        let for_response = attached
            .writes_response_id
            .then(|| (self.settings.clone(), attached.envelope));
        ResponseFuture::new(self.inner.call(req), for_response)
    }
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
pub(crate) fn response_id_value(
    settings: &Settings,
    envelope: &RequestEnvelope,
) -> Option<HeaderValue> {
    match settings.response_id {
        ResponseId::None => None,
        ResponseId::EchoExternal => Some(
            envelope
                .external_id_header()
                .cloned()
                .unwrap_or_else(|| internal_header_value(envelope)),
        ),
        ResponseId::Internal => Some(internal_header_value(envelope)),
    }
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
}

fn internal_header_value(envelope: &RequestEnvelope) -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = envelope.internal_id().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a hyphenated uuid is a valid header value")
}
