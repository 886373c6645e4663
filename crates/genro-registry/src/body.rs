use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::future::Tracking;

pin_project! {
    /// Response body of [`Registry`](crate::Registry): the request stays in the registry until
    /// this body has ended, failed or been dropped.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        tracked: Option<Tracking>,
    }
}

impl<B> ResponseBody<B> {
    /// A body that keeps `tracked` until it ends, fails or is dropped.
    pub fn new(inner: B, tracked: Option<Tracking>) -> Self {
        Self { inner, tracked }
    }
}

impl<B: Body> Body for ResponseBody<B> {
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
            // The last frame, or a failure that ends the body: the request is over.
            None | Some(Err(_)) => drop(this.tracked.take()),
            Some(Ok(_)) => {}
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
