//! Live registry of in-flight requests for tower services: each request is tracked until its
//! response body has ended.
//!
//! [`RegistryLayer`] puts every request's [`RequestEnvelope`](genro_envelope::RequestEnvelope)
//! in an [`EnvelopeRegistry`] and takes it out exactly once, when the response body ends, fails or
//! is dropped, when the client goes away mid-request, or when the handler panics. A registry
//! answers "what is running right now?": the watchdog scans it for stuck requests, the debug
//! console lists it, and a graceful drain waits on [`EnvelopeRegistry::wait_idle`].
//!
//! Unlike an in-flight counter that stops when the handler returns, the entry lives until the last
//! byte of the body: a request that streams for ten minutes is in flight for ten minutes, and its
//! [`Phase`](genro_envelope::Phase) says whether it is still being handled or already streaming.
//!
//! # Example
//!
//! ```
//! use genro_envelope::EnvelopeLayer;
//! use genro_registry::{EnvelopeRegistry, RegistryLayer};
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let registry = EnvelopeRegistry::new();
//! let svc = ServiceBuilder::new()
//!     .layer(EnvelopeLayer::new())
//!     .layer(RegistryLayer::new(registry.clone()))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from("hi"))))
//!     }));
//!
//! let res = svc.oneshot(Request::new(String::new())).await?;
//! // The handler has returned, but the body has not been read: still in flight.
//! assert_eq!(registry.len(), 1);
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(body, "hi");
//! assert!(registry.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! The registry is a fixed set of shards, each a `slab` behind its own mutex, plus one atomic
//! count. A request takes one shard lock twice (insert, remove), each for a few dozen
//! instructions, chosen by random bits of its id so that concurrent requests rarely meet.
//! `len()` is one atomic load. Scans lock one shard at a time. The file `tests/loom.rs`
//! model-checks insert, remove and len under every interleaving loom explores.
//!
//! `slab` gives O(1) insert and remove with no hashing and reuses freed slots, so a steady
//! load does not allocate.
//!
//! # Feature flags
//!
//! None: it has no feature flags.
//!
//! # Minimum supported Rust version
//!
//! 1.89.

mod layer;
mod registry;
mod service;
mod shards;
mod tracking;

pub use layer::RegistryLayer;
pub use registry::{EnvelopeRegistry, InFlight};
pub use service::{RegistryService, ResponseBody, ResponseFuture};
pub use tracking::InFlightToken;

/// Building blocks for services that do the registry layer's work together with other work in
/// one future (as genro-asgi's `GenroLayer` does). A plain stack uses [`RegistryLayer`].
pub mod plumbing {
    use std::sync::Arc;

    use genro_envelope::RequestEnvelope;
    use http::Request;

    pub use crate::tracking::Tracking;
    use crate::RegistryLayer;

    /// Tracks `req`, whose envelope is `envelope`, as `layer`'s service does: the entry lives
    /// until the returned [`Tracking`] is dropped. A request asking for an upgrade also gets an
    /// [`InFlightToken`](crate::InFlightToken) in its extensions, which keeps the entry while the
    /// upgraded connection lives.
    pub fn begin<B>(
        layer: &RegistryLayer,
        req: &mut Request<B>,
        envelope: Arc<RequestEnvelope>,
    ) -> Tracking {
        crate::tracking::begin(layer.registry(), req, envelope)
    }
}

/// The synchronisation primitives of the shards; `tests/loom.rs` swaps in loom's.
mod sync {
    pub(crate) use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    };
}
