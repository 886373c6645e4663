use std::{
    convert::Infallible,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    task::{Context, Poll},
};

use genro_envelope::{plumbing::is_grpc, RequestEnvelope};
use http::{header, Request, Response};
use tower_service::Service;

use crate::{
    body::RenderedBody,
    error::BoxError,
    future::ResponseFuture,
    handle::{Ctx, Failure, Subject},
    layer::Settings,
};

/// The service made by [`ErrorLayer`](crate::ErrorLayer).
///
/// It never fails: its error type is `Infallible`, so it fits where axum and hyper want an
/// infallible service. An error from the inner service's `poll_ready` is kept and answered, as an
/// error response, to the next call.
pub struct ErrorService<S> {
    inner: S,
    settings: Arc<Settings>,
    not_ready: Option<BoxError>,
}

genro_envelope::inner_service!(ErrorService { settings, not_ready = None });

impl<S> ErrorService<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self {
            inner,
            settings,
            not_ready: None,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ErrorService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: RenderedBody,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.not_ready.is_none() {
            if let Err(error) = std::task::ready!(self.inner.poll_ready(cx)) {
                self.not_ready = Some(error.into());
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let subject = match RequestEnvelope::from_request(&req) {
            Some(envelope) => Subject::Envelope(envelope.clone()),
            None => Subject::Request(req.method().clone(), req.uri().clone()),
        };
        let ctx = Ctx {
            subject,
            accept: req.headers().get(header::ACCEPT).cloned(),
            grpc: is_grpc(req.headers()),
            settings: self.settings.clone(),
        };
        if let Some(error) = self.not_ready.take() {
            return ResponseFuture::failed(ctx, Failure::Service(error));
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => ResponseFuture::running(future, ctx),
            Err(payload) => ResponseFuture::failed(ctx, Failure::panic(&*payload)),
        }
    }
}
