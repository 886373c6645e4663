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
    Owned(InFlight),
    Shared(Arc<InFlight>),
}

impl Tracked {
    fn envelope(&self) -> &RequestEnvelope {
        match self {
            Self::Owned(guard) => guard.envelope(),
            Self::Shared(guard) => guard.envelope(),
        }
    }
}

/// One request's place in the registry, from [`RegistryLayer::begin`] until dropped: dropping
/// it removes the entry (once the last [`InFlightToken`] of an upgraded request is gone too).
///
/// [`RegistryLayer::begin`]: crate::RegistryLayer::begin
/// [`InFlightToken`]: crate::InFlightToken
#[derive(Debug)]
pub struct Tracking(pub(crate) Tracked);

impl Tracking {
    /// The tracked request's envelope.
    #[must_use]
    pub fn envelope(&self) -> &RequestEnvelope {
        self.0.envelope()
    }

    /// Records what the response head says about the request's phase: streaming its body, or
    /// upgraded (a `101`, or a successful `CONNECT`).
    pub fn respond(&self, status: StatusCode) {
        let envelope = self.0.envelope();
        let upgraded = status == StatusCode::SWITCHING_PROTOCOLS
            || (envelope.method() == Method::CONNECT && status.is_success());
        envelope.set_phase(if upgraded {
            Phase::Upgraded
        } else {
            Phase::Streaming
        });
    }
}

pin_project! {
    /// Response future of [`Registry`](crate::Registry). Holds the registry entry until the
    /// response is ready, then hands it to the [`ResponseBody`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        tracked: Option<Tracking>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, tracked: Tracking) -> Self {
        Self {
            inner,
            tracked: Some(tracked),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // On `Err`, `?` returns and the entry is dropped with this future.
        let response = ready!(this.inner.poll(cx))?;
        let tracked = this.tracked.take();
        if let Some(tracked) = &tracked {
            tracked.respond(response.status());
        }
        Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, tracked))))
    }
}
