use std::{
    sync::Arc,
    task::{Context, Poll},
};

use genro_envelope::{
    plumbing::{WatchedBody, WatchedFuture},
    RequestEnvelope,
};
use http::{Request, Response};
use tower_service::Service;

use crate::{tracking::Tracking, EnvelopeRegistry};

/// Response future of [`RegistryService`]: holds the registry entry until the response is
/// ready, then hands it to the [`ResponseBody`].
pub type ResponseFuture<F> = WatchedFuture<F, Tracking>;

/// Response body of [`RegistryService`]: the request stays in the registry until this body has
/// ended, failed or been dropped.
pub type ResponseBody<B> = WatchedBody<B, Tracking>;

/// The service made by [`RegistryLayer`](crate::RegistryLayer).
pub struct RegistryService<S> {
    inner: S,
    registry: EnvelopeRegistry,
}

genro_envelope::inner_service!(RegistryService { registry });

impl<S> RegistryService<S> {
    /// `inner`, tracking its requests in `registry`.
    pub fn new(inner: S, registry: EnvelopeRegistry) -> Self {
        Self { inner, registry }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RegistryService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let envelope = if let Some(envelope) = RequestEnvelope::from_request(&req) {
            envelope.clone()
        } else {
            let envelope = Arc::new(RequestEnvelope::for_request(&req));
            req.extensions_mut().insert(envelope.clone());
            envelope
        };
        let tracked = crate::tracking::begin(&self.registry, &mut req, envelope);
        // If `call` panics, `tracked` is dropped while unwinding and the entry goes with it.
        let future = self.inner.call(req);
        ResponseFuture::new(future, tracked)
    }
}
