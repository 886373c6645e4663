use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use http::{HeaderName, HeaderValue, Response};
use pin_project_lite::pin_project;

pin_project! {
    /// Response future of [`EnvelopeService`](crate::EnvelopeService): writes the id header on the response.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id_header: Option<(HeaderName, HeaderValue)>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, id_header: Option<(HeaderName, HeaderValue)>) -> Self {
        Self { inner, id_header }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some((name, value)) = this.id_header.take() {
            if let http::header::Entry::Vacant(slot) = response.headers_mut().entry(name) {
                slot.insert(value);
            }
        }
        Poll::Ready(Ok(response))
    }
}
