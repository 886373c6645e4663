//! Building blocks for the other genro crates and for services that fuse several layers into
//! one.
//!
//! A plain stack never needs this module: [`EnvelopeLayer`] and the other
//! layers do this work themselves. It is public because genro's registry, metrics and fused
//! `GenroLayer` are separate crates built on the same pieces:
//!
//! - [`attach`] and [`write_response_id`]: the envelope layer's work as two calls;
//! - [`WatchedFuture`] / [`ResponseWatch`] and [`WatchedBody`] / [`BodyWatch`]: one response
//!   future and one body that carry per-request state from the request to the end of the
//!   response body (a registry entry, a metrics measurement);
//! - [`is_grpc`] and [`truncated`]: the checks and bounds every genro crate applies the same way;
//! - [`serving_client`]: the client address for a server that polls its requests' futures
//!   itself, without a [`ClientAddr`](crate::ClientAddr) extension per request;
//! - [`Synthesized`]: the mark on responses a genro layer made itself;
//! - [`cancelled`]: the cancel signal, for an error observer that holds a request after its
//!   handler ended.

use std::{future::Future, task::Poll};

use http::{Request, Response};

pub use crate::settings::Attached;
pub use crate::truncate::truncated;
pub use crate::watch::{BodyWatch, ResponseWatch, WatchedBody, WatchedFuture};
use crate::{EnvelopeLayer, RequestEnvelope};

/// Resolves once `envelope`'s request is cancelled ([`RequestEnvelope::cancel`]), at once if it
/// was already: for an error observer that holds a request after its handler ended, as the
/// debug console's hold does, so that a cancel reaches a held request as it reaches a running
/// one.
///
/// The signal keeps one waiter: while the handler runs, that is the request's
/// [`CancelFuture`](crate::CancelFuture); wait here only once it has finished.
pub fn cancelled(envelope: &RequestEnvelope) -> impl Future<Output = ()> + Send + '_ {
    let signal = envelope.cancel_signal();
    std::future::poll_fn(move |cx| {
        if signal.is_cancelled() {
            return Poll::Ready(());
        }
        signal.register(cx.waker());
        // A cancel between the check and the registration woke no one: look again.
        if signal.is_cancelled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// Gives `req` its envelope, as `layer`'s service does: reads the external id, builds the
/// envelope, records the ids on the current span and puts the envelope in the request
/// extensions. A request that already has an envelope keeps it.
pub fn attach<B>(layer: &EnvelopeLayer, req: &mut Request<B>) -> Attached {
    layer.settings.attach(req)
}

/// Writes the id header on `response`, as `layer`'s service does: the configured header, with
/// the value [`ResponseId`](crate::ResponseId) chooses, unless the response already has one.
pub fn write_response_id<B>(
    layer: &EnvelopeLayer,
    response: &mut Response<B>,
    envelope: &RequestEnvelope,
) {
    layer.settings.write_response_id(response, envelope);
}

/// Runs `poll` (one poll of a request's future, by the server that accepted its connection) with
/// `client` as the address an envelope made meanwhile on this thread records when the request
/// carries neither a [`ClientAddr`](crate::ClientAddr) nor axum's `ConnectInfo`.
///
/// A server knows the client once per connection; putting it in every request's extensions
/// costs an allocation and a hash insertion per request (and can make the extensions' table
/// grow), where this costs a thread-local write around each poll. Every envelope layer inside
/// the request's future, on the same task, sees it; work the request hands to another task
/// does not (pass the envelope itself there).
///
/// ```
/// use genro_envelope::{plumbing, EnvelopeLayer, RequestEnvelope};
/// use http::Request;
/// use tower::{service_fn, Layer, Service};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut service = EnvelopeLayer::new().layer(service_fn(|req: Request<()>| {
///     let client = RequestEnvelope::from_request(&req).unwrap().client();
///     std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(client)))
/// }));
/// let client = "192.0.2.7:41000".parse().unwrap();
/// // The envelope is made when the service is called: here, inside the scope.
/// let future = plumbing::serving_client(client, || service.call(Request::new(())));
/// let res = future.await.unwrap();
/// assert_eq!(*res.body(), Some(client));
/// // Outside it, a request without a `ClientAddr` has no client.
/// let res = service.call(Request::new(())).await.unwrap();
/// assert_eq!(*res.body(), None);
/// # }
/// ```
#[inline]
pub fn serving_client<R>(client: std::net::SocketAddr, poll: impl FnOnce() -> R) -> R {
    crate::client::serving_client(client, poll)
}

/// A response extension marking a response that a genro layer made itself (an error rendered
/// by the error layer) rather than the application's routing. Such a response answers any path,
/// so the metrics layer never takes it as proof that a gRPC method exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synthesized;

/// Whether a request is gRPC: its `content-type` is `application/grpc` or one of its
/// `application/grpc+…` variants. The error layer answers such requests with a gRPC status.
#[must_use]
#[inline]
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Writes what every genro service that wraps an `inner` service has: `get_ref`, `get_mut` and
/// `into_inner`, a `Clone` without a bound on anything but the inner service (each listed field
/// cloned, or set to the expression after `=`), and a `Debug` that shows the inner service.
///
/// ```
/// # use std::sync::Arc;
/// pub struct CountingService<S> {
///     inner: S,
///     count: Arc<std::sync::atomic::AtomicU64>,
///     pending: Option<u8>,
/// }
/// genro_envelope::inner_service!(CountingService { count, pending = None });
/// # let s = CountingService { inner: (), count: Arc::default(), pending: Some(1) };
/// # assert!(s.clone().pending.is_none());
/// # assert_eq!(format!("{s:?}"), "CountingService { inner: (), .. }");
/// ```
#[macro_export]
macro_rules! inner_service {
    ($name:ident { $($field:ident $(= $reset:expr)?),* $(,)? }) => {
        impl<S> $name<S> {
            /// A reference to the inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// A mutable reference to the inner service.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// The inner service.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }

        impl<S: ::core::clone::Clone> ::core::clone::Clone for $name<S> {
            fn clone(&self) -> Self {
                Self {
                    inner: self.inner.clone(),
                    $($field: $crate::inner_service!(@clone self.$field $(, $reset)?),)*
                }
            }
        }

        impl<S: ::core::fmt::Debug> ::core::fmt::Debug for $name<S> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!($name))
                    .field("inner", &self.inner)
                    .finish_non_exhaustive()
            }
        }
    };
    (@clone $value:expr) => {
        ::core::clone::Clone::clone(&$value)
    };
    (@clone $value:expr, $reset:expr) => {
        $reset
    };
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use http::{Method, Uri};

    use super::cancelled;
    use crate::RequestEnvelope;

    #[tokio::test]
    async fn cancelled_resolves_on_a_cancel_and_at_once_after_one() {
        let envelope = Arc::new(RequestEnvelope::new(Method::GET, Uri::from_static("/")));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), cancelled(&envelope))
                .await
                .is_err(),
            "not cancelled yet"
        );
        let waiting = tokio::spawn({
            let envelope = envelope.clone();
            async move { cancelled(&envelope).await }
        });
        tokio::task::yield_now().await;
        envelope.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the cancel")
            .unwrap();
        cancelled(&envelope).await;
    }
}
