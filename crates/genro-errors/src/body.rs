use bytes::Bytes;
use http_body_util::{combinators::BoxBody, combinators::UnsyncBoxBody, BodyExt, Full};

/// A response body type the error layer can write a rendered error into.
///
/// [`ErrorLayer`](crate::ErrorLayer) answers with the inner service's own body type rather than
/// wrapping it, so a success costs no extra body layer (and axum does not re-box the body). An
/// error response is made with `from_rendered`. Implemented for axum's `Body` (feature `axum`),
/// tonic's `Body` (feature `tonic`), `Full<Bytes>`, `String`, and the boxed bodies of
/// http-body-util; implement it for your own body type if you use another. It is a body, so the
/// layer can tell a bodiless error response from one with a body of the application's own.
pub trait RenderedBody: http_body::Body<Data = Bytes> + Sized + 'static {
    /// A body holding exactly `bytes` (empty for gRPC trailers-only responses).
    fn from_rendered(bytes: Bytes) -> Self;
}

impl RenderedBody for Full<Bytes> {
    fn from_rendered(bytes: Bytes) -> Self {
        Self::new(bytes)
    }
}

impl RenderedBody for String {
    fn from_rendered(bytes: Bytes) -> Self {
        Self::from_utf8_lossy(&bytes).into_owned()
    }
}

impl<E: 'static> RenderedBody for BoxBody<Bytes, E> {
    fn from_rendered(bytes: Bytes) -> Self {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    }
}

impl<E: 'static> RenderedBody for UnsyncBoxBody<Bytes, E> {
    fn from_rendered(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }
}

#[cfg(feature = "axum")]
impl RenderedBody for axum_core::body::Body {
    fn from_rendered(bytes: Bytes) -> Self {
        Self::from(bytes)
    }
}

#[cfg(feature = "tonic")]
impl RenderedBody for tonic::body::Body {
    fn from_rendered(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            Self::empty()
        } else {
            Self::new(Full::new(bytes))
        }
    }
}
