use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_service::Service;

use crate::{
    future::ResponseFuture,
    settings::Settings,
    taskdump::{TracePoint, Traced},
};

/// The service made by [`EnvelopeLayer`](crate::EnvelopeLayer).
pub struct EnvelopeService<S> {
    pub(crate) inner: S,
    pub(crate) settings: Arc<Settings>,
}

crate::inner_service!(EnvelopeService { settings });

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EnvelopeService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<Traced<S::Future>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let attached = self.settings.attach(&mut req);
        let point = TracePoint::new(&attached.envelope);
        let for_response = attached
            .writes_response_id
            .then(|| (self.settings.clone(), attached.envelope));
        ResponseFuture::new(point.wrap(self.inner.call(req)), for_response)
    }
}
