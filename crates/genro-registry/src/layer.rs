use std::fmt;

use tower_layer::Layer;

use crate::{EnvelopeRegistry, RegistryService};

/// A [`Layer`] that keeps every request in an [`EnvelopeRegistry`] until its response body ends.
///
/// The request's envelope is the one [`EnvelopeLayer`](genro_envelope::EnvelopeLayer) put in its
/// extensions; when that layer is missing, this one makes the envelope itself so the registry
/// still works alone.
///
/// The entry is removed exactly once, by a guard that moves from the response future into the
/// response body:
///
/// | how the request ends | when the entry goes |
/// |---|---|
/// | the body ends | after its last frame |
/// | the body errors or is dropped unfinished (client gone mid-stream) | then |
/// | the inner service returns an error | then |
/// | the response future is dropped (client gone while handling) | then |
/// | the handler panics, in `call` or in the future | while unwinding |
/// | the connection is upgraded (WebSocket) | when the last [`InFlightToken`](crate::InFlightToken) is dropped |
#[derive(Clone)]
pub struct RegistryLayer {
    registry: EnvelopeRegistry,
}

impl RegistryLayer {
    /// A layer that tracks requests in `registry`.
    #[must_use]
    pub fn new(registry: EnvelopeRegistry) -> Self {
        Self { registry }
    }

    /// The registry this layer tracks requests in.
    #[must_use]
    pub fn registry(&self) -> &EnvelopeRegistry {
        &self.registry
    }
}

impl Default for RegistryLayer {
    fn default() -> Self {
        Self::new(EnvelopeRegistry::new())
    }
}

impl fmt::Debug for RegistryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLayer")
            .field("registry", &self.registry)
            .finish()
    }
}

impl<S> Layer<S> for RegistryLayer {
    type Service = RegistryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RegistryService::new(inner, self.registry.clone())
    }
}
