//! Per-request state that lives until the response body ends: made when the request arrives,
//! told the response head by [`WatchedFuture`], then kept by [`WatchedBody`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// State a [`WatchedBody`] keeps until its body ends, fails or is dropped, then drops: a
/// registry entry, a metrics measurement. It is told the length of each data frame on the way.
pub trait BodyWatch {
    /// Called with the length of each data frame of the body.
    #[inline]
    fn data(&mut self, len: usize) {
        let _ = len;
    }
}

/// State a [`WatchedFuture`] holds while the inner service works: it sees the response head,
/// then becomes the [`BodyWatch`] its body keeps.
pub trait ResponseWatch {
    /// What the response body keeps until it ends.
    type Body: BodyWatch;

    /// Called once with the response head (which it may change, for example to add a header).
    fn on_response<B>(self, response: &mut Response<B>) -> Self::Body;
}

/// Two watches on one body: both see each frame, and they are dropped in order.
impl<A: BodyWatch, B: BodyWatch> BodyWatch for (A, B) {
    #[inline]
    fn data(&mut self, len: usize) {
        self.0.data(len);
        self.1.data(len);
    }
}

pin_project! {
    /// A response body that keeps a [`BodyWatch`] until the body's last frame, its failure, or
    /// its drop, whichever comes first. Frames, the end of the stream and the size hint pass
    /// through unchanged.
    ///
    /// The genro layers that must see a response to its end (registry, metrics, the fused
    /// `GenroLayer`) all answer with this body, made by their [`WatchedFuture`].
    pub struct WatchedBody<B, W> {
        #[pin]
        inner: B,
        watch: Option<W>,
    }
}

impl<B, W> WatchedBody<B, W> {
    /// `inner`, keeping `watch` (if any) until it ends.
    pub fn new(inner: B, watch: Option<W>) -> Self {
        Self { inner, watch }
    }
}

impl<B: fmt::Debug, W> fmt::Debug for WatchedBody<B, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedBody")
            .field("inner", &self.inner)
            .field("watching", &self.watch.is_some())
            .finish()
    }
}

impl<B: Body, W: BodyWatch> Body for WatchedBody<B, W> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline(always)]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(watch), Some(data)) = (this.watch.as_mut(), frame.data_ref()) {
                    watch.data(bytes::Buf::remaining(data));
                }
            }
            // The last frame, or a failure that ends the body: the request is over.
            None | Some(Err(_)) => drop(this.watch.take()),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response future that holds a [`ResponseWatch`] while the inner future runs, shows it
    /// the response head, and puts what it becomes in a [`WatchedBody`] around the response
    /// body. Dropped before the response (the client went away), it drops the watch with it; an
    /// error from the inner future drops it too.
    pub struct WatchedFuture<F, W> {
        #[pin]
        inner: F,
        watch: Option<W>,
    }
}

impl<F, W> WatchedFuture<F, W> {
    /// `inner`, holding `watch` until its response.
    pub fn new(inner: F, watch: W) -> Self {
        Self {
            inner,
            watch: Some(watch),
        }
    }
}

impl<F: fmt::Debug, W> fmt::Debug for WatchedFuture<F, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, B, E, W> Future for WatchedFuture<F, W>
where
    F: Future<Output = Result<Response<B>, E>>,
    W: ResponseWatch,
{
    type Output = Result<Response<WatchedBody<B, W::Body>>, E>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // On `Err`, `?` returns and the watch is dropped with this future.
        let mut response = ready!(this.inner.poll(cx))?;
        let watch = this
            .watch
            .take()
            .map(|watch| watch.on_response(&mut response));
        Poll::Ready(Ok(response.map(|body| WatchedBody::new(body, watch))))
    }
}
