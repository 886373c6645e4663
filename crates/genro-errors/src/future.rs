use std::{
    convert::Infallible,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

use crate::{
    body::RenderedBody,
    error::{BoxError, Carried},
    handle::{fallback, handle, panic_text, Ctx, Failure, Handling},
    report::OTHER,
    ErrorKind,
};

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Running { #[pin] future: F },
        Handling { future: Handling<B> },
    }
}

pin_project! {
    /// Response future of [`ErrorService`](crate::ErrorService).
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        ctx: Option<Ctx>,
    }
}

impl<F, B: RenderedBody> ResponseFuture<F, B> {
    pub(crate) fn running(future: F, ctx: Ctx) -> Self {
        Self {
            state: State::Running { future },
            ctx: Some(ctx),
        }
    }

    pub(crate) fn failed(ctx: Ctx, failure: Failure) -> Self {
        Self {
            state: State::Handling {
                future: handle(ctx, failure),
            },
            ctx: None,
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: RenderedBody,
{
    type Output = Result<Response<B>, Infallible>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let failure = match this.state.project() {
                StateProj::Handling { future } => {
                    // The error path runs user code (handlers, rendering into the user's body
                    // type): a panic there still answers, with a plain 500.
                    return match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(poll) => poll.map(Ok),
                        Err(payload) => Poll::Ready(Ok(fallback(future, &panic_text(&*payload)))),
                    };
                }
                StateProj::Running { future } => {
                    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Ok(response))) => {
                            // The common case: no carried error. Extensions of a plain response
                            // are empty, so this costs one check.
                            let carried = if response.extensions().is_empty() {
                                None
                            } else {
                                response
                                    .extensions()
                                    .get::<Carried>()
                                    .and_then(Carried::take)
                            };
                            let Some(error) = carried else {
                                if response.status().is_server_error() {
                                    if let Some(ctx) = this.ctx.as_ref() {
                                        ctx.settings.count(ErrorKind::Status, OTHER);
                                    }
                                }
                                return Poll::Ready(Ok(response));
                            };
                            Failure::App(error)
                        }
                        Ok(Poll::Ready(Err(error))) => Failure::Service(error.into()),
                        Err(payload) => Failure::panic(&*payload),
                    }
                }
            };
            let ctx = this.ctx.take().expect("a running future has its context");
            self.as_mut().project().state.set(State::Handling {
                future: handle(ctx, failure),
            });
        }
    }
}
