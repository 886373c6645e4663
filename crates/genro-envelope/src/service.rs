use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use crate::{
    future::ResponseFuture,
    id::Refusal,
    layer::{ResponseId, Settings},
    RequestEnvelope,
};

/// The service made by [`EnvelopeLayer`](crate::EnvelopeLayer).
pub struct EnvelopeService<S> {
    pub(crate) inner: S,
    pub(crate) settings: Arc<Settings>,
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
        f.debug_struct("EnvelopeService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> EnvelopeService<S> {
    fn build(&self, req: &Request<impl Sized>) -> RequestEnvelope {
        let mut envelope = RequestEnvelope::for_request(req);
        if let Some(value) = req.headers().get(&self.settings.header) {
            match Refusal::of(value.as_bytes()) {
                None => envelope.set_external_id(value.clone()),
                Some(refusal) => {
                    self.settings.invalid.inc();
                    // The value itself is hostile input: only its length and the reason are logged.
                    tracing::debug!(
                        header = %self.settings.header,
                        len = value.len(),
                        reason = refusal.reason(),
                        "dropped an invalid external request id"
                    );
                }
            }
        }
        #[cfg(feature = "axum")]
        if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
            envelope.set_route(path.as_str());
        }
        envelope
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
        let envelope = Arc::new(self.build(&req));
        record_on_span(&envelope);
        let id_header = match self.settings.response_id {
            ResponseId::None => None,
            ResponseId::EchoExternal => Some(
                envelope
                    .external_id_header()
                    .cloned()
                    .unwrap_or_else(|| internal_header_value(&envelope)),
            ),
            ResponseId::Internal => Some(internal_header_value(&envelope)),
        };
        req.extensions_mut().insert(envelope);
        ResponseFuture::new(
            self.inner.call(req),
            id_header.map(|v| (self.settings.header.clone(), v)),
        )
    }
}

fn record_on_span(envelope: &RequestEnvelope) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("request_id", tracing::field::display(envelope.internal_id().hyphenated()));
    if let Some(external) = envelope.external_id() {
        span.record("external_id", external);
    }
}

fn internal_header_value(envelope: &RequestEnvelope) -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = envelope.internal_id().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a hyphenated uuid is a valid header value")
}
