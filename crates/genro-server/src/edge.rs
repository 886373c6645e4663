//! The layers around the whole application, from `[cors]` and `[compression]`: tower-http's own.

use std::pin::Pin;

use http::{HeaderName, HeaderValue, Method};
use tower_http::{
    compression::{
        predicate::{NotForContentType, Predicate, SizeAbove},
        CompressionLayer,
    },
    cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer},
};

use crate::config::{CompressionSection, CorsSection};

/// Compresses only responses whose size is known before they are sent. tower-http's encoders
/// hold data back until they have enough to compress, so a streamed body (chunks as they are
/// produced, server-sent events) would reach the client late and in bursts: such responses are
/// sent as they are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KnownSize;

impl Predicate for KnownSize {
    fn should_compress<B: http_body::Body>(&self, response: &http::Response<B>) -> bool {
        response.body().size_hint().exact().is_some()
            || response
                .headers()
                .contains_key(http::header::CONTENT_LENGTH)
    }
}

/// tower-http's compression as `[compression]` sets it. Responses smaller than `min_size`,
/// streamed responses (no known size), gRPC, images and server-sent events are never
/// compressed; tower-http also leaves alone a response that already has a `content-encoding`.
pub(crate) fn compression(section: &CompressionSection) -> CompressionLayer<impl Predicate> {
    let has = |name: &str| section.algorithms.iter().any(|a| a == name);
    let predicate = SizeAbove::new(u16::try_from(section.min_size).unwrap_or(u16::MAX))
        .and(KnownSize)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    CompressionLayer::new()
        .gzip(has("gzip"))
        .br(has("br"))
        .deflate(has("deflate"))
        .compress_when(predicate)
}

/// The allowed origins, changeable while the server runs (hot reload).
pub(crate) type LiveOrigins = std::sync::Arc<arc_swap::ArcSwap<Vec<String>>>;

/// tower-http's CORS as `[cors]` sets it. The configuration was checked when read, so every
/// value parses and the combinations tower-http refuses cannot occur. The origins are read from
/// `origins` on every request, so a reload changes them live.
pub(crate) fn cors(section: &CorsSection, origins: &LiveOrigins) -> CorsLayer {
    let live = origins.clone();
    let origins = AllowOrigin::predicate(move |origin: &HeaderValue, _parts| {
        live.load()
            .iter()
            .any(|allowed| allowed == "*" || allowed.as_bytes() == origin.as_bytes())
    });
    let methods = if section.allow_methods.iter().any(|m| m == "*") {
        AllowMethods::any()
    } else {
        AllowMethods::list(
            section
                .allow_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok()),
        )
    };
    let headers = if section.allow_headers.iter().any(|h| h == "*") {
        AllowHeaders::any()
    } else {
        AllowHeaders::list(
            section
                .allow_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(section.allow_credentials)
        .max_age(section.max_age)
}

pin_project_lite::pin_project! {
    #[project = EdgeProj]
    enum Edge<B>
    where
        B: http_body::Body,
    {
        Plain { #[pin] body: B },
        // Boxed: the compression encoders' state is several KiB, and an unboxed variant would
        // make every response that large, compressed or not, and copied at every layer.
        Compressed { body: Pin<Box<tower_http::compression::CompressionBody<B>>> },
        Empty,
    }
}

pin_project_lite::pin_project! {
    /// The response body at the edge of the server: the application's, compressed or not, or
    /// empty (what CORS answers a preflight with).
    pub struct EdgeBody<B>
    where
        B: http_body::Body,
    {
        #[pin]
        inner: Edge<B>,
    }
}

impl<B: http_body::Body> EdgeBody<B> {
    pub(crate) fn plain(body: B) -> Self {
        Self {
            inner: Edge::Plain { body },
        }
    }

    pub(crate) fn compressed(body: tower_http::compression::CompressionBody<B>) -> Self {
        Self {
            inner: Edge::Compressed {
                body: Box::pin(body),
            },
        }
    }
}

impl<B: http_body::Body> Default for EdgeBody<B> {
    fn default() -> Self {
        Self { inner: Edge::Empty }
    }
}

impl<B: http_body::Body> std::fmt::Debug for EdgeBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeBody").finish_non_exhaustive()
    }
}

impl<B> http_body::Body for EdgeBody<B>
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<genro_errors::BoxError>,
{
    type Data = bytes::Bytes;
    type Error = genro_errors::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.project().inner.project() {
            EdgeProj::Plain { body } => body.poll_frame(cx).map_err(Into::into),
            EdgeProj::Compressed { body } => body.as_mut().poll_frame(cx),
            EdgeProj::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Edge::Plain { body } => body.is_end_stream(),
            Edge::Compressed { body } => body.is_end_stream(),
            Edge::Empty => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            Edge::Plain { body } => body.size_hint(),
            Edge::Compressed { body } => body.size_hint(),
            Edge::Empty => http_body::SizeHint::with_exact(0),
        }
    }
}
