//! [`TracePoint`]: where a request's future can be traced. The layers that make the envelope
//! wrap the inner service's future with it; in a build without tracing it is nothing at all.

use std::sync::Arc;

use crate::RequestEnvelope;

/// The future a [`TracePoint`] makes of `F`: `F` itself in a build without tracing.
#[cfg(not(genro_taskdump))]
pub type Traced<F> = F;

/// The future a [`TracePoint`] makes of `F`: `F` itself in a build without tracing.
#[cfg(genro_taskdump)]
pub type Traced<F> = traced::TracedFuture<F>;

/// Where a request's future can be traced: made from its envelope before the inner service is
/// called, then wrapped around the future that service returns. `EnvelopeLayer` and
/// `GenroLayer` do it; a service that makes envelopes itself should too. In a build without
/// tracing it holds nothing and [`wrap`](Self::wrap) returns the future unchanged.
#[derive(Debug)]
#[must_use = "wrap the inner service's future with it"]
pub struct TracePoint {
    #[cfg(genro_taskdump)]
    envelope: Arc<RequestEnvelope>,
}

impl TracePoint {
    /// A trace point for the request of `envelope`.
    #[inline(always)]
    pub fn new(envelope: &Arc<RequestEnvelope>) -> Self {
        #[cfg(not(genro_taskdump))]
        {
            let _ = envelope;
            Self {}
        }
        #[cfg(genro_taskdump)]
        {
            envelope.trace_hook().watch();
            Self {
                envelope: envelope.clone(),
            }
        }
    }

    /// `future`, traceable by [`waiting_on`](super::waiting_on).
    #[inline(always)]
    pub fn wrap<F>(self, future: F) -> Traced<F> {
        #[cfg(not(genro_taskdump))]
        {
            future
        }
        #[cfg(genro_taskdump)]
        {
            traced::TracedFuture::new(future, self.envelope)
        }
    }
}

#[cfg(genro_taskdump)]
mod traced {
    use std::{
        fmt,
        future::Future,
        panic::{catch_unwind, resume_unwind, AssertUnwindSafe},
        pin::{pin, Pin},
        sync::Arc,
        task::{Context, Poll},
    };

    use pin_project_lite::pin_project;
    use tokio::runtime::dump::Trace;

    use crate::RequestEnvelope;

    /// Tells the hook the future is gone, however it goes.
    struct Finish(Arc<RequestEnvelope>);

    impl Drop for Finish {
        fn drop(&mut self) {
            self.0.trace_hook().finish();
        }
    }

    pin_project! {
        /// A request's future that answers a dumper's question on its next poll, with the trace of
        /// that poll (tokio's `Trace::capture`, rooted here: the frames of this request alone).
        pub struct TracedFuture<F> {
            #[pin]
            inner: F,
            finish: Finish,
        }
    }

    impl<F> TracedFuture<F> {
        pub(super) fn new(inner: F, envelope: Arc<RequestEnvelope>) -> Self {
            Self {
                inner,
                finish: Finish(envelope),
            }
        }
    }

    impl<F> fmt::Debug for TracedFuture<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TracedFuture").finish_non_exhaustive()
        }
    }

    impl<F: Future> Future for TracedFuture<F> {
        type Output = F::Output;

        #[inline]
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let hook = this.finish.0.trace_hook();
            let poll = if hook.asked() {
                let inner = this.inner;
                match catch_unwind(AssertUnwindSafe(|| traced_poll(inner, cx))) {
                    Ok((poll, trace)) => {
                        hook.answer(Some(trace));
                        poll
                    }
                    Err(panic) => {
                        hook.answer(None);
                        resume_unwind(panic)
                    }
                }
            } else {
                this.inner.poll(cx)
            };
            match &poll {
                Poll::Pending => hook.register(cx.waker()),
                Poll::Ready(_) => hook.finish(),
            }
            poll
        }
    }

    /// One poll of `inner` in tokio's tracing mode, rooted here so the trace stops at this frame.
    /// tokio's leaf futures answer `Pending` while traced and wake their task again, so the next
    /// poll does the work this one skipped.
    #[inline(never)]
    fn traced_poll<F: Future>(
        inner: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> (Poll<F::Output>, Trace) {
        let mut inner = Some(inner);
        let root = pin!(Trace::root(std::future::poll_fn(|cx| {
            let inner = inner.take().expect("polled once");
            Poll::Ready(Trace::capture(|| inner.poll(cx)))
        })));
        match root.poll(cx) {
            Poll::Ready(traced) => traced,
            Poll::Pending => unreachable!("the root answers on its first poll"),
        }
    }
}
