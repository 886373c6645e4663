//! Cancelling one request in flight: [`RequestEnvelope::cancel`] asks, and a [`CancelLayer`]
//! inside the layer that renders errors makes it happen.

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{envelope::RequestEnvelope, signal::Cancel};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error a cancelled request ends with: the error layer answers it with 503 and an error
/// id, logs it once and counts it as `cancelled`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request was cancelled while it was being handled")
    }
}

impl StdError for Cancelled {}

/// A [`Layer`] that lets a request be cancelled through its envelope
/// ([`RequestEnvelope::cancel`]): the inner service's future is dropped at once, so the
/// handler's own drop guards run, and the request ends with the error [`Cancelled`].
///
/// Put it inside the layer that renders errors (genro-errors' `ErrorLayer`), and inside an
/// [`EnvelopeLayer`](crate::EnvelopeLayer), which gives requests their envelope. A request
/// without an envelope passes through untouched. Its cost is one `Arc` clone per request, and
/// one atomic waker registration per poll that stays pending. (genro-server puts it inside the
/// one service that also applies its body limit, timeout and concurrency limit.)
///
/// ```
/// use genro_envelope::{CancelLayer, Cancelled, EnvelopeLayer, RequestEnvelope};
/// use http::Request;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slow = service_fn(|req: Request<()>| async move {
///     // The handler cancels its own request here; a debug console does it from outside.
///     RequestEnvelope::from_request(&req).unwrap().cancel();
///     std::future::pending::<Result<http::Response<()>, std::convert::Infallible>>().await
/// });
/// let service = EnvelopeLayer::new().layer(CancelLayer::new().layer(slow));
/// let error = service.oneshot(Request::new(())).await.unwrap_err();
/// assert!(error.is::<Cancelled>());
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CancelLayer {
    _private: (),
}

impl CancelLayer {
    /// The layer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for CancelLayer {
    type Service = CancelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CancelService { inner }
    }
}

/// The service made by [`CancelLayer`].
#[derive(Debug, Clone)]
pub struct CancelService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for CancelService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CancelFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let envelope = RequestEnvelope::from_request(&req).cloned();
        CancelFuture {
            state: State::Running {
                future: self.inner.call(req),
            },
            envelope,
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F },
        Done,
    }
}

pin_project! {
    /// Response future of [`CancelService`].
    pub struct CancelFuture<F> {
        #[pin]
        state: State<F>,
        envelope: Option<Arc<RequestEnvelope>>,
    }
}

impl<F> fmt::Debug for CancelFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelFuture")
            .field(
                "cancelled",
                &self.envelope.as_ref().map(|e| e.is_cancelled()),
            )
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for CancelFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let signal = this.envelope.as_deref().map(RequestEnvelope::cancel_signal);
        if signal.is_some_and(Cancel::is_cancelled) {
            // Dropping the handler's future here runs its drop guards now, not at the end of
            // the connection.
            this.state.set(State::Done);
            return Poll::Ready(Err(Cancelled.into()));
        }
        let poll = match this.state.as_mut().project() {
            StateProj::Running { future } => future.poll(cx),
            StateProj::Done => panic!("CancelFuture polled after it completed"),
        };
        match poll {
            Poll::Ready(result) => {
                this.state.set(State::Done);
                Poll::Ready(result.map_err(Into::into))
            }
            Poll::Pending => {
                if let Some(signal) = signal {
                    signal.register(cx.waker());
                    // A cancel between the first check and the registration found no waker.
                    if signal.is_cancelled() {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(Cancelled.into()));
                    }
                }
                Poll::Pending
            }
        }
    }
}
