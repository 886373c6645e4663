use std::{fmt, ops::Deref, sync::Arc};

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{request::Parts, StatusCode};

use crate::RequestEnvelope;

/// Extractor for the request's envelope (feature `axum`).
///
/// ```
/// use genro_envelope::Envelope;
///
/// async fn handler(Envelope(envelope): Envelope) -> String {
///     envelope.annotate("stage", "loaded");
///     envelope.short_id().to_string()
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
/// ```
///
/// Take `Option<Envelope>` in a handler that must also work without
/// [`EnvelopeLayer`](crate::EnvelopeLayer).
#[derive(Debug, Clone)]
pub struct Envelope(pub Arc<RequestEnvelope>);

impl Deref for Envelope {
    type Target = RequestEnvelope;

    fn deref(&self) -> &RequestEnvelope {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Envelope {
    type Rejection = MissingEnvelope;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        RequestEnvelope::from_extensions(&parts.extensions)
            .map(|e| Self(e.clone()))
            .ok_or(MissingEnvelope { _priv: () })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Envelope {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(RequestEnvelope::from_extensions(&parts.extensions).map(|e| Self(e.clone())))
    }
}

/// Rejection of the [`Envelope`] extractor: the request did not pass through
/// [`EnvelopeLayer`](crate::EnvelopeLayer).
///
/// This is a server misconfiguration, not a client error, so it answers 500 and logs an error
/// that says how to fix it.
#[derive(Debug)]
pub struct MissingEnvelope {
    _priv: (),
}

const MISSING: &str = "request envelope missing: add genro_envelope::EnvelopeLayer around this \
                       route (Router::layer or ServiceBuilder), outside any layer that reads it";

impl fmt::Display for MissingEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MISSING)
    }
}

impl std::error::Error for MissingEnvelope {}

impl IntoResponse for MissingEnvelope {
    fn into_response(self) -> Response {
        tracing::error!("{MISSING}");
        (StatusCode::INTERNAL_SERVER_ERROR, MISSING).into_response()
    }
}
