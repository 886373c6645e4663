use std::{
    convert::Infallible,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use http::Response;
use pin_project_lite::pin_project;

use crate::{
    body::RenderedBody,
    error::{BoxError, Carried},
    framework::{self, Shape},
    handle::{fallback, handle, panic_message, Ctx, Failure, Handling},
    panic::Catching,
    report::OTHER,
    ErrorKind,
};

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Running { #[pin] future: F },
        // A small text/plain error response read whole, to tell a framework rejection from the
        // application's own answer. Boxed: the error path is rare, and unboxed its response
        // head would make every request's future (and each one around it) larger.
        Reading { reading: Pin<Box<Reading<B>>> },
        Handling { future: Handling<B> },
    }
}

pin_project! {
    /// A response being read whole (see `State::Reading`).
    #[project = ReadingProj]
    struct Reading<B> {
        #[pin]
        body: B,
        parts: Option<http::response::Parts>,
        read: BytesMut,
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

/// What a response the inner service answered becomes.
enum Answer<B> {
    /// Sent as it is.
    Pass(Response<B>),
    /// Handled on the error path.
    Fail(Failure),
    /// Read first: it may be a framework rejection.
    Read(Response<B>),
}

/// The common case costs the status check: extensions of a plain response are empty, and a
/// status under 400 is never an error.
#[inline(always)]
fn answer<B: RenderedBody>(response: Response<B>, ctx: Option<&Ctx>) -> Answer<B> {
    let carried = if response.extensions().is_empty() {
        None
    } else {
        response
            .extensions()
            .get::<Carried>()
            .and_then(Carried::take)
    };
    if let Some(error) = carried {
        return Answer::Fail(Failure::App(error));
    }
    if response.status().as_u16() < 400 {
        return Answer::Pass(response);
    }
    let Some(ctx) = ctx else {
        return Answer::Pass(response);
    };
    match ctx
        .settings
        .framework
        .then(|| framework::shape(&response))
        .flatten()
    {
        Some(Shape::Bodiless) => Answer::Fail(framework::bodiless(response)),
        Some(Shape::Text) => Answer::Read(response),
        None => {
            if response.status().is_server_error() {
                ctx.settings.count(ErrorKind::Status, OTHER);
            }
            Answer::Pass(response)
        }
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
                    let _catching = Catching::enter();
                    return match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(poll) => poll.map(Ok),
                        Err(payload) => {
                            Poll::Ready(Ok(fallback(future, &panic_message(&*payload))))
                        }
                    };
                }
                StateProj::Reading { reading } => {
                    let ReadingProj { body, parts, read } = reading.as_mut().project();
                    match std::task::ready!(framework::read(body, read, cx)) {
                        Ok(()) => {
                            let parts = parts.take().expect("a response is read once");
                            let text = std::mem::take(read).freeze();
                            if let Some(failure) = framework::rejection(&parts, &text) {
                                failure
                            } else {
                                // The application's own answer: sent back byte for byte (and
                                // a 5xx counted, as any the layer does not render).
                                if let (true, Some(ctx)) =
                                    (parts.status.is_server_error(), this.ctx.as_ref())
                                {
                                    ctx.settings.count(ErrorKind::Status, OTHER);
                                }
                                return Poll::Ready(Ok(Response::from_parts(
                                    parts,
                                    B::from_rendered(text),
                                )));
                            }
                        }
                        Err(error) => Failure::Service(error),
                    }
                }
                StateProj::Running { future } => {
                    let polled = {
                        let _catching = Catching::enter();
                        catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
                    };
                    match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Ok(response))) => {
                            match answer(response, this.ctx.as_ref()) {
                                Answer::Pass(response) => return Poll::Ready(Ok(response)),
                                Answer::Fail(failure) => failure,
                                Answer::Read(response) => {
                                    let (parts, body) = response.into_parts();
                                    self.as_mut().project().state.set(State::Reading {
                                        reading: Box::pin(Reading {
                                            body,
                                            parts: Some(parts),
                                            read: BytesMut::new(),
                                        }),
                                    });
                                    continue;
                                }
                            }
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
