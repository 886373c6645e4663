//! What the server serves: an axum `Router`, or any tower service as an [`AsgiApplication`]
//! ([`IntoApplication`]), each put inside the [`RequestLayers`] every request passes.
//!
//! The types here other than those two are what a served application's type is made of; a
//! user names them only to write an `IntoApplication` of their own.

use std::{convert::Infallible, future::Future};

use bytes::Bytes;
use genro_errors::{BoxError, RenderedBody};
use genro_stack::GenroLayer;
use http::{Request, Response};
use tower::{Layer, Service};

use super::limits::LimitsLayer;
pub use super::{
    body::{BodyReadTimeout, IncomingBody},
    limits::{BodyTooLarge, Limits, LimitsFuture},
};
use crate::config::LimitsSection;

/// The request body an application receives: the client's, with the body read timeout
/// (`[limits] body_read_timeout`) and the body limit (`[limits] body_limit`: reading past it
/// fails with http-body-util's `LengthLimitError`, which axum's extractors answer with 413).
pub type RequestBody = http_body_util::Limited<IncomingBody>;

/// The layers every request of the application passes, as the configuration sets them: the
/// genro stack (envelope, registry, metrics, errors) outside, and inside the error layer the
/// server's limits ([`Limits`]: the body limit by `Content-Length`, the concurrency limit,
/// the request timeout, cancellation), so that each refusal is rendered (413, 503, 504, 503)
/// with an error id and a request id.
#[derive(Clone, Debug)]
pub struct RequestLayers {
    pub(crate) genro: GenroLayer,
    pub(crate) limits: LimitsLayer,
}

impl RequestLayers {
    /// The genro stack, with the limits `limits` sets.
    pub(crate) fn new(genro: GenroLayer, limits: &LimitsSection) -> Self {
        Self {
            genro,
            limits: LimitsLayer::new(limits),
        }
    }

    /// Wraps `service` in the request layers.
    pub fn wrap<S>(&self, service: S) -> Wrapped<S> {
        self.genro.layer(self.limits.layer(service))
    }
}

/// A service inside the whole request path: the type [`RequestLayers::wrap`] makes, named only
/// by this crate's own `IntoApplication` impls.
#[doc(hidden)]
pub type Wrapped<S> = <GenroLayer as Layer<Limits<S>>>::Service;

/// Something the server can serve: an axum `Router` (its routes get the request layers inside
/// the routing, so route templates reach metrics), or any tower service through
/// [`AsgiApplication::from_service`].
pub trait IntoApplication {
    /// The service the application becomes.
    type Service: Service<
            Request<RequestBody>,
            Response = Response<Self::Body>,
            Error = Infallible,
            Future = Self::Future,
        > + Clone
        + Send
        + Sync
        + 'static;
    /// Its response future.
    type Future: Future<Output = Result<Response<Self::Body>, Infallible>> + Send + 'static;
    /// Its response body.
    type Body: http_body::Body<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    /// Its response body's error.
    type BodyError: Into<BoxError>;

    /// Puts the application inside `layers`.
    fn into_service(self, layers: &RequestLayers) -> Self::Service;
}

#[cfg(feature = "axum")]
impl IntoApplication for axum::Router {
    type Service = Self;
    type Future = axum::routing::future::RouteFuture<Infallible>;
    type Body = axum::body::Body;
    type BodyError = axum::Error;

    fn into_service(self, layers: &RequestLayers) -> Self {
        let layers = layers.clone();
        // `Router::layer` applies to every route and the fallback, inside the routing.
        // `with_state(())` turns the handlers into routes once, as `axum::serve` does:
        // unconverted, axum would make them (and apply the layers) again on every request.
        self.layer(tower::layer::layer_fn(move |route| layers.wrap(route)))
            .with_state(())
    }
}

/// An application that is not an axum `Router` (tonic routes, a hyper service): a tower
/// service the server runs inside the request layers.
///
/// ```no_run
/// # async fn example(server: genro_server::AsgiServer) -> Result<(), genro_server::Error> {
/// use genro_server::AsgiApplication;
///
/// let service = tower::service_fn(|_req: http::Request<_>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from("hi")))
/// });
/// server.serve(AsgiApplication::from_service(service)).await
/// # }
/// ```
///
/// Its response body must be one the error layer can write an error into
/// ([`RenderedBody`]): axum's and tonic's are.
#[derive(Clone, Debug)]
pub struct AsgiApplication<S>(S);

impl<S> AsgiApplication<S> {
    /// `service`, to serve.
    pub fn from_service(service: S) -> Self {
        Self(service)
    }

    /// The service.
    pub fn into_inner(self) -> S {
        self.0
    }
}

impl<S, B> IntoApplication for AsgiApplication<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RenderedBody + http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = Wrapped<S>;
    type Future = <Wrapped<S> as Service<Request<RequestBody>>>::Future;
    type Body = genro_stack::ResponseBody<B>;
    type BodyError = B::Error;

    fn into_service(self, layers: &RequestLayers) -> Self::Service {
        layers.wrap(self.0)
    }
}
