use std::sync::Arc;

use genro_envelope::{Phase, RequestEnvelope, ResponseWatch, WatchedFuture};
use http::{Method, Response, StatusCode};

use crate::registry::InFlight;

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

/// Response future of [`Registry`](crate::Registry): holds the registry entry until the
/// response is ready, then hands it to the [`ResponseBody`](crate::ResponseBody).
pub type ResponseFuture<F> = WatchedFuture<F, Tracking>;

impl ResponseWatch for Tracking {
    type Body = Self;

    #[inline]
    fn on_response<B>(self, response: &mut Response<B>) -> Self {
        self.respond(response.status());
        self
    }
}
