use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use genro_envelope::RequestEnvelope;
use http::{Method, Request, Response, Version};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    future::{ResponseFuture, Tracked, Tracking},
    registry::InFlight,
    EnvelopeRegistry,
};

/// A [`Layer`] that keeps every request in an [`EnvelopeRegistry`] until its response body ends.
///
/// The request's envelope is the one [`EnvelopeLayer`](genro_envelope::EnvelopeLayer) put in its
/// extensions; when that layer is missing, this one makes the envelope itself so the registry
/// still works alone.
///
/// The entry is removed exactly once, by a guard that moves from the response future into the
/// response body:
///
/// | how the request ends | when the entry goes |
/// |---|---|
/// | the body ends | after its last frame |
/// | the body errors or is dropped unfinished (client gone mid-stream) | then |
/// | the inner service returns an error | then |
/// | the response future is dropped (client gone while handling) | then |
/// | the handler panics, in `call` or in the future | while unwinding |
/// | the connection is upgraded (WebSocket) | when the last [`InFlightToken`] is dropped |
#[derive(Clone)]
pub struct RegistryLayer {
    registry: EnvelopeRegistry,
}

impl RegistryLayer {
    /// A layer that tracks requests in `registry`.
    #[must_use]
    pub fn new(registry: EnvelopeRegistry) -> Self {
        Self { registry }
    }

    /// The registry this layer tracks requests in.
    #[must_use]
    pub fn registry(&self) -> &EnvelopeRegistry {
        &self.registry
    }
}

impl RegistryLayer {
    /// Tracks `req`, whose envelope is `envelope`, as the layer's service does: the entry lives
    /// until the returned [`Tracking`] is dropped. A request asking for an upgrade also gets an
    /// [`InFlightToken`] in its extensions, which keeps the entry while the upgraded connection
    /// lives.
    ///
    /// For services that do this layer's work together with other work in one future (as
    /// genro-asgi's `GenroLayer` does); a plain stack uses the layer itself.
    pub fn begin<B>(&self, req: &mut Request<B>, envelope: Arc<RequestEnvelope>) -> Tracking {
        begin(&self.registry, req, envelope)
    }
}

fn begin<B>(
    registry: &EnvelopeRegistry,
    req: &mut Request<B>,
    envelope: Arc<RequestEnvelope>,
) -> Tracking {
    let guard = registry.track(envelope);
    Tracking(if wants_upgrade(req) {
        let shared = Arc::new(guard);
        req.extensions_mut().insert(InFlightToken(shared.clone()));
        Tracked::Shared(shared)
    } else {
        Tracked::Owned(guard)
    })
}

impl Default for RegistryLayer {
    fn default() -> Self {
        Self::new(EnvelopeRegistry::new())
    }
}

impl fmt::Debug for RegistryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLayer")
            .field("registry", &self.registry)
            .finish()
    }
}

impl<S> Layer<S> for RegistryLayer {
    type Service = Registry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Registry {
            inner,
            registry: self.registry.clone(),
        }
    }
}

/// Keeps an upgraded request (a WebSocket, an HTTP/2 extended CONNECT) in the registry.
///
/// The response to an upgrade ends at once, but the session it starts may run for hours. For a
/// request that asks for an upgrade, [`RegistryLayer`] puts an `InFlightToken` in the request
/// extensions; the entry stays until the response body has ended *and* every clone of the token
/// has been dropped. Move it into the task that runs the upgraded connection:
///
/// ```
/// use axum::{extract::ws::WebSocketUpgrade, response::Response, Extension};
/// use genro_registry::InFlightToken;
///
/// async fn ws(upgrade: WebSocketUpgrade, Extension(token): Extension<InFlightToken>) -> Response {
///     upgrade.on_upgrade(move |mut socket| async move {
///         let _tracked = token; // the request stays in flight until the socket task ends
///         while let Some(Ok(msg)) = socket.recv().await {
///             if socket.send(msg).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
/// # let _ = axum::Router::<()>::new().route("/ws", axum::routing::any(ws));
/// ```
#[derive(Clone)]
pub struct InFlightToken(pub(crate) Arc<InFlight>);

impl fmt::Debug for InFlightToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InFlightToken").field(&self.0).finish()
    }
}

/// The service made by [`RegistryLayer`].
pub struct Registry<S> {
    inner: S,
    registry: EnvelopeRegistry,
}

impl<S: Clone> Clone for Registry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("inner", &self.inner)
            .field("registry", &self.registry)
            .finish()
    }
}

fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
        || (req.method() == Method::CONNECT && req.version() == Version::HTTP_2)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Registry<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<crate::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let envelope = match RequestEnvelope::from_request(&req) {
            Some(envelope) => envelope.clone(),
            None => {
                let envelope = Arc::new(RequestEnvelope::for_request(&req));
                req.extensions_mut().insert(envelope.clone());
                envelope
            }
        };
        let tracked = begin(&self.registry, &mut req, envelope);
        // If `call` panics, `tracked` is dropped while unwinding and the entry goes with it.
        let future = self.inner.call(req);
        ResponseFuture::new(future, tracked)
    }
}
