//! [`LimitsLayer`] and [`Limits`]: the server's limits on every request of the application, as
//! one service inside the error layer (its docs give the refusals and why it is one service).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use genro_envelope::{CancelFuture, CancelLayer, CancelService};
use genro_errors::BoxError;
use http::Request;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{load_shed::error::Overloaded, timeout::error::Elapsed, Layer, Service};

use crate::{
    config::LimitsSection,
    slots::{Slot, Slots},
};

/// Puts [`Limits`] on a service, with the limits of `[limits]`: shared by every clone of the
/// service (the concurrency limit counts the requests of the whole server).
#[derive(Clone, Debug)]
pub(crate) struct LimitsLayer {
    body_limit: u64,
    timeout: Option<Duration>,
    concurrency: Option<Slots>,
}

impl LimitsLayer {
    pub(crate) fn new(limits: &LimitsSection) -> Self {
        Self {
            body_limit: limits.body_limit,
            timeout: limits.request_timeout,
            concurrency: (limits.concurrency_limit > 0)
                .then(|| Slots::new(limits.concurrency_limit)),
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    /// `service` behind these limits.
    fn layer(&self, service: S) -> Limits<S> {
        Limits {
            inner: CancelLayer::new().layer(service),
            limits: self.clone(),
        }
    }
}

/// The application's service behind the server's limits, inside the error layer, which renders
/// each refusal with an error id and a request id:
///
/// | refusal | error | answer |
/// |---|---|---|
/// | `Content-Length` over `[limits] body_limit` | [`BodyTooLarge`] | 413 |
/// | `[limits] concurrency_limit` requests already in progress | tower's `Overloaded` | 503 |
/// | longer than `[limits] request_timeout` | tower's `Elapsed` | 504 |
/// | cancelled through the envelope | genro-envelope's `Cancelled` | 503 |
///
/// One service and one future for the limits, around genro-envelope's `CancelService`, rather
/// than a layer for each (tower's `Filter`, `Timeout`, `LoadShed` and `ConcurrencyLimit`, and a
/// wrapper to give them one error type): every layer's future holds the one inside it and is
/// moved whole at each level. A request pays a `Content-Length` lookup and a reference to its
/// envelope; a timer and a concurrency slot (from the same counted slots as connections and
/// executor jobs) only when those limits are set.
#[derive(Clone, Debug)]
pub struct Limits<S> {
    // Cancellation through the envelope is genro-envelope's own service.
    inner: CancelService<S>,
    limits: LimitsLayer,
}

/// The `Content-Length` a request declares, when it declares one that can be read.
fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    let length = req.headers().get(http::header::CONTENT_LENGTH)?;
    length.to_str().ok()?.parse().ok()
}

impl<S, B> Service<Request<B>> for Limits<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = LimitsFuture<CancelFuture<S::Future>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let limits = &self.limits;
        if let Some(length) = declared_length(&req).filter(|&l| l > limits.body_limit) {
            return LimitsFuture::refused(BodyTooLarge {
                length,
                limit: limits.body_limit,
            });
        }
        let permit = match &limits.concurrency {
            None => None,
            Some(slots) => match slots.try_take() {
                Ok(slot) => Some(slot),
                Err(_) => return LimitsFuture::refused(Overloaded::new()),
            },
        };
        LimitsFuture {
            state: State::Running {
                future: Box::pin(self.inner.call(req)),
            },
            deadline: limits.timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            _permit: permit,
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { future: Pin<Box<F>> },
        Refused { error: Option<BoxError> },
        Done,
    }
}

pin_project! {
    /// Response future of [`Limits`]: the application's (behind genro-envelope's
    /// cancellation), ended early by the timeout; it holds the request's concurrency permit
    /// until the response head is ready.
    pub struct LimitsFuture<F> {
        #[pin]
        state: State<F>,
        // Boxed: a timer is several cache lines, and only a configured timeout needs one.
        deadline: Option<Pin<Box<Sleep>>>,
        _permit: Option<Slot>,
    }
}

impl<F> LimitsFuture<F> {
    fn refused(error: impl Into<BoxError>) -> Self {
        Self {
            state: State::Refused {
                error: Some(error.into()),
            },
            deadline: None,
            _permit: None,
        }
    }
}

impl<F> fmt::Debug for LimitsFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitsFuture").finish_non_exhaustive()
    }
}

impl<F, T> Future for LimitsFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let poll = match this.state.as_mut().project() {
            StateProj::Running { future } => future.as_mut().poll(cx),
            StateProj::Refused { error } => {
                return Poll::Ready(Err(error.take().expect("polled after completion")))
            }
            StateProj::Done => panic!("LimitsFuture polled after it completed"),
        };
        if poll.is_ready() {
            this.state.set(State::Done);
            return poll;
        }
        if this
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
        {
            // Dropping the handler's future here runs its drop guards now, not at the end of
            // the connection.
            this.state.set(State::Done);
            return Poll::Ready(Err(Elapsed::new().into()));
        }
        Poll::Pending
    }
}

/// The error of a request whose `Content-Length` is over `[limits] body_limit`: answered 413,
/// counted as `errors_total{kind="error",type="body_limit"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The length the request declared.
    pub length: u64,
    /// The limit.
    pub limit: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body is {} bytes, over the limit of {} bytes",
            self.length, self.limit
        )
    }
}

impl std::error::Error for BodyTooLarge {}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Arc};

    use genro_envelope::{Cancelled, RequestEnvelope};
    use tower::ServiceExt;

    use super::*;

    fn limits(ini: &str) -> LimitsSection {
        crate::Config::from_ini_str(&format!("[limits]\n{ini}"), "t.ini", Vec::new())
            .unwrap()
            .limits
    }

    fn pending_forever() -> impl Service<
        Request<()>,
        Response = (),
        Error = Infallible,
        Future = impl Future<Output = Result<(), Infallible>>,
    > + Clone {
        tower::service_fn(|_req: Request<()>| std::future::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn each_limit_refuses_with_the_error_the_error_layer_renders() {
        let layer = LimitsLayer::new(&limits(
            "body_limit = 10\nrequest_timeout = 1s\nconcurrency_limit = 1\n",
        ));
        let service = layer.layer(pending_forever());
        let long = Request::builder()
            .header("content-length", "11")
            .body(())
            .unwrap();
        let error = service.clone().oneshot(long).await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<BodyTooLarge>(),
            Some(&BodyTooLarge {
                length: 11,
                limit: 10
            })
        );
        // The first request takes the one permit and times out; the second, meanwhile, is shed.
        let first = tokio::spawn(service.clone().oneshot(Request::new(())));
        tokio::task::yield_now().await;
        let shed = service.clone().oneshot(Request::new(())).await.unwrap_err();
        assert!(shed.is::<Overloaded>(), "{shed}");
        assert!(first.await.unwrap().unwrap_err().is::<Elapsed>());
        // Its permit is back.
        let again = tokio::spawn(service.oneshot(Request::new(())));
        tokio::task::yield_now().await;
        assert!(!again.is_finished());
        again.abort();
    }

    #[tokio::test]
    async fn a_cancel_through_the_envelope_ends_a_waiting_request() {
        let service = LimitsLayer::new(&limits("")).layer(pending_forever());
        let envelope = Arc::new(RequestEnvelope::new(
            http::Method::GET,
            http::Uri::from_static("/"),
        ));
        let mut req = Request::new(());
        req.extensions_mut().insert(envelope.clone());
        let waiting = tokio::spawn(service.oneshot(req));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        envelope.cancel();
        let error = waiting.await.unwrap().unwrap_err();
        assert!(error.is::<Cancelled>(), "{error}");
    }

    /// A concurrency limit past what a semaphore holds (tokio's `MAX_PERMITS`) is as good as no
    /// limit: the server starts and serves, where a semaphore of that size panics.
    #[tokio::test]
    async fn a_concurrency_limit_past_what_a_semaphore_holds_serves() {
        let limits = limits(&format!("concurrency_limit = {}\n", usize::MAX));
        assert_eq!(limits.concurrency_limit, usize::MAX);
        let service =
            LimitsLayer::new(&limits).layer(tower::service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>("served")
            }));
        assert_eq!(service.oneshot(Request::new(())).await.unwrap(), "served");
    }
}
