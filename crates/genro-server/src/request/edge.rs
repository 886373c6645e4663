//! The layers around the whole application, tower-http's own: CORS (`[cors]`) and compression
//! (`[compression]`), put on by [`wrap`] (or neither, by [`plain`]), with the body limit
//! (`[limits] body_limit`) on the request body. A `Content-Length` over the limit is refused inside the envelope
//! ([`RequestLayers`](super::app::RequestLayers)), so that its 413 has a request id.

use std::{convert::Infallible, pin::Pin, sync::Arc};

use arc_swap::ArcSwap;
use bytes::Bytes;
use genro_errors::BoxError;
use http::{HeaderValue, Request, Response};
use http_body_util::Limited;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::{
    compression::{
        predicate::{NotForContentType, Predicate, SizeAbove},
        CompressionLayer,
    },
    cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer},
};

use super::{adapter::PortService, body::IncomingBody};
use crate::config::{Allow, CompressionSection, Config, CorsSection, Encoding};

/// Whether `config` asks for an edge layer (CORS or compression): if not, the server serves
/// [`plain`], whose type has neither.
pub(crate) fn is_configured(config: &Config) -> bool {
    config.compression.enabled || config.cors.enabled
}

/// The application inside the edge: the user's, in its request layers, behind the built-in
/// endpoints, taking the request with its body limit.
pub(crate) trait InsideEdge<B>:
    Service<
        Request<Limited<IncomingBody>>,
        Response = Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, B> InsideEdge<B> for S where
    S: Service<
            Request<Limited<IncomingBody>>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// `app` with the request body limit and the edge's response body, without CORS or compression.
pub(crate) fn plain<S, B>(app: S, config: &Config) -> impl PortService<EdgeBody<B>>
where
    S: InsideEdge<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    app.map_response(|r: Response<B>| r.map(EdgeBody::plain))
        .map_request(body_limit(config))
}

/// Puts `[limits] body_limit` on each request's body.
fn body_limit(
    config: &Config,
) -> impl Fn(Request<IncomingBody>) -> Request<Limited<IncomingBody>> + Clone + Send + Sync + 'static
{
    let limit = usize::try_from(config.limits.body_limit).unwrap_or(usize::MAX);
    move |req| req.map(|body| Limited::new(body, limit))
}

/// `app` inside the edge layers `config` asks for. Compression and CORS are put on only when
/// configured: each costs a wrapper per request.
pub(crate) fn wrap<S, B>(
    app: S,
    config: &Config,
    origins: &LiveOrigins,
) -> impl PortService<EdgeBody<B>>
where
    S: InsideEdge<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let app = if config.compression.enabled {
        tower::util::Either::Left(
            ServiceBuilder::new()
                .map_response(|r: Response<_>| r.map(EdgeBody::compressed))
                .layer(compression(&config.compression))
                .service(app),
        )
    } else {
        tower::util::Either::Right(app.map_response(|r: Response<B>| r.map(EdgeBody::plain)))
    };
    let app = if config.cors.enabled {
        tower::util::Either::Left(cors(&config.cors, origins).layer(app))
    } else {
        tower::util::Either::Right(app)
    };
    app.map_request(body_limit(config))
}

/// Compresses only responses whose size is known before they are sent. tower-http's encoders
/// hold data back until they have enough to compress, so a streamed body (chunks as they are
/// produced, server-sent events) would reach the client late and in bursts: such responses are
/// sent as they are.
#[derive(Clone, Copy, Debug)]
struct KnownSize;

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
fn compression(section: &CompressionSection) -> CompressionLayer<impl Predicate> {
    let predicate = SizeAbove::new(section.min_size)
        .and(KnownSize)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    CompressionLayer::new()
        .gzip(section.offers(Encoding::Gzip))
        .br(section.offers(Encoding::Br))
        .deflate(section.offers(Encoding::Deflate))
        .compress_when(predicate)
}

/// The allowed origins, changeable while the server runs (hot reload).
pub(crate) type LiveOrigins = Arc<ArcSwap<Allow<String>>>;

/// tower-http's CORS as `[cors]` sets it. The configuration was checked when read, so the
/// combinations tower-http refuses cannot occur. The origins are read from `origins` on every
/// request, so a reload changes them live.
fn cors(section: &CorsSection, origins: &LiveOrigins) -> CorsLayer {
    let live = origins.clone();
    let origins =
        AllowOrigin::predicate(move |origin: &HeaderValue, _parts| match &**live.load() {
            Allow::Any => true,
            Allow::List(allowed) => allowed.iter().any(|a| a.as_bytes() == origin.as_bytes()),
        });
    let methods = match &section.allow_methods {
        Allow::Any => AllowMethods::any(),
        Allow::List(methods) => AllowMethods::list(methods.iter().cloned()),
    };
    let headers = match &section.allow_headers {
        Allow::Any => AllowHeaders::any(),
        Allow::List(headers) => AllowHeaders::list(headers.iter().cloned()),
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
    pub(crate) struct EdgeBody<B>
    where
        B: http_body::Body,
    {
        #[pin]
        inner: Edge<B>,
    }
}

impl<B: http_body::Body> EdgeBody<B> {
    fn plain(body: B) -> Self {
        Self {
            inner: Edge::Plain { body },
        }
    }

    fn compressed(body: tower_http::compression::CompressionBody<B>) -> Self {
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
