use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use std::sync::Arc;

use http::Response;
use pin_project_lite::pin_project;

use crate::{settings::Settings, RequestEnvelope};

pin_project! {
    /// Response future of [`EnvelopeService`](crate::EnvelopeService): writes the id header on the response.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Two pointers: the id value is made only once the response exists, and the future
        // stays small (axum moves it into a box per request).
        for_response: Option<(Arc<Settings>, Arc<RequestEnvelope>)>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        for_response: Option<(Arc<Settings>, Arc<RequestEnvelope>)>,
    ) -> Self {
        Self {
            inner,
            for_response,
        }
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some((settings, envelope)) = this.for_response.take() {
            settings.write_response_id(&mut response, &envelope);
        }
        Poll::Ready(Ok(response))
    }
}
