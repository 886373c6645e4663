//! One request's place in the registry, from its arrival to the end of its response body.

use std::{fmt, sync::Arc};

use genro_envelope::{
    plumbing::{BodyWatch, ResponseWatch},
    Phase, RequestEnvelope,
};
use http::{Method, Request, Response, StatusCode, Version};

use crate::{registry::InFlight, EnvelopeRegistry};

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

/// One request's place in the registry, from [`plumbing::begin`](crate::plumbing::begin) until
/// dropped: dropping it removes the entry (once the last [`InFlightToken`] of an upgraded request
/// is gone too).
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

impl ResponseWatch for Tracking {
    type Body = Self;

    #[inline]
    fn on_response<B>(self, response: &mut Response<B>) -> Self {
        self.respond(response.status());
        self
    }
}

impl BodyWatch for Tracking {}

/// Tracks `req`, whose envelope is `envelope`, in `registry`. A request asking for an upgrade
/// also gets an [`InFlightToken`] in its extensions.
pub(crate) fn begin<B>(
    registry: &EnvelopeRegistry,
    req: &mut Request<B>,
    envelope: Arc<RequestEnvelope>,
) -> Tracking {
    let guard = registry.track(envelope);
    Tracking(if wants_upgrade(req) {
        let shared = Arc::new(guard);
        req.extensions_mut().insert(InFlightToken(shared.clone()));
        Tracked::Shared(shared)
    } else {
        Tracked::Owned(guard)
    })
}

fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
        || (req.method() == Method::CONNECT && req.version() == Version::HTTP_2)
}

/// Keeps an upgraded request (a WebSocket, an HTTP/2 extended CONNECT) in the registry.
///
/// The response to an upgrade ends at once, but the session it starts may run for hours. For a
/// request that asks for an upgrade, [`RegistryLayer`](crate::RegistryLayer) puts an
/// `InFlightToken` in the request extensions; the entry stays until the response body has ended
/// *and* every clone of the token has been dropped. Move it into the task that runs the upgraded
/// connection:
///
/// ```
/// use axum::{extract::ws::WebSocketUpgrade, response::Response, Extension};
/// use genro_registry::InFlightToken;
///
/// async fn ws(upgrade: WebSocketUpgrade, Extension(token): Extension<InFlightToken>) -> Response {
///     upgrade.on_upgrade(move |mut socket| async move {
///         let _tracked = token; // the request stays in flight until the socket task ends
///         while let Some(Ok(msg)) = socket.recv().await {
///             if socket.send(msg).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
/// # let _ = axum::Router::<()>::new().route("/ws", axum::routing::any(ws));
/// ```
#[derive(Clone)]
pub struct InFlightToken(pub(crate) Arc<InFlight>);

impl InFlightToken {
    /// The envelope of the upgraded request.
    #[must_use]
    pub fn envelope(&self) -> &Arc<RequestEnvelope> {
        self.0.envelope()
    }
}

impl fmt::Debug for InFlightToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InFlightToken").field(&self.0).finish()
    }
}
