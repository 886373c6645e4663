use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use genro_envelope::{Phase, RequestEnvelope};
use http::{Method, Response, StatusCode};
use pin_project_lite::pin_project;

use crate::{registry::InFlight, ResponseBody};

/// The registry entry of one request, owned alone or shared with [`InFlightToken`]s.
///
/// [`InFlightToken`]: crate::InFlightToken
#[derive(Debug)]
pub(crate) enum Tracked {
    Owned(#[allow(dead_code)] InFlight),
    Shared(#[allow(dead_code)] Arc<InFlight>),
}

pin_project! {
    /// Response future of [`Registry`](crate::Registry). Holds the registry entry until the
    /// response is ready, then hands it to the [`ResponseBody`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        tracked: Option<Tracked>,
        envelope: Arc<RequestEnvelope>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, tracked: Tracked, envelope: Arc<RequestEnvelope>) -> Self {
        Self {
            inner,
            tracked: Some(tracked),
            envelope,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // On `Err`, `?` returns and the entry is dropped with this future.
        let response = ready!(this.inner.poll(cx))?;
        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS
            || (this.envelope.method() == Method::CONNECT && response.status().is_success());
        this.envelope.set_phase(if upgraded { Phase::Upgraded } else { Phase::Streaming });
        let tracked = this.tracked.take();
        Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, tracked))))
    }
}
