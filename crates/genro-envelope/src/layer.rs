use std::{fmt, sync::Arc};

use http::HeaderName;
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tower_layer::Layer;

use crate::{
    service::EnvelopeService,
    settings::{ResponseId, Settings, DEFAULT_HEADER},
};

/// A [`Layer`] that gives every request a [`RequestEnvelope`](crate::RequestEnvelope).
///
/// For each request it:
/// - creates an `Arc<RequestEnvelope>` with a fresh UUIDv7 internal id and puts it in the request
///   extensions;
/// - takes the external id from the id header (default `x-request-id`) when it is valid, and
///   otherwise drops it and counts it (the value is never logged or echoed);
/// - records `request_id` and `external_id` on the current tracing span, for spans that declare
///   those fields (`tracing::field::Empty`);
/// - writes the id header on the response, unless the inner service already did.
///
/// The layer is the builder: setters take and return `self`, and cloning it is cheap.
#[derive(Clone)]
pub struct EnvelopeLayer {
    pub(crate) settings: Arc<Settings>,
}

impl EnvelopeLayer {
    /// A layer reading and writing `x-request-id`, echoing a valid external id.
    #[must_use]
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                header: DEFAULT_HEADER,
                response_id: ResponseId::EchoExternal,
                invalid: Counter::default(),
                keep_headers: false,
                read_traceparent: true,
                start_traces: false,
                invalid_traceparent: Counter::default(),
                shared: None,
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        // Only while building: a layer already cloned into services gets its own copy, and the
        // copy keeps sharing the refusal counter.
        Arc::make_mut(&mut self.settings)
    }

    /// Gives every envelope this layer makes a reference to `value`, which whoever holds the
    /// envelope reaches with [`RequestEnvelope::shared`](crate::RequestEnvelope::shared): what a server hands each request
    /// (genro-server's `ServerContext`), for one reference count per request instead of a
    /// request extension of its own (an allocation and a hash insertion per request).
    ///
    /// ```
    /// use genro_envelope::{EnvelopeLayer, RequestEnvelope};
    /// use http::{Request, Response};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// struct Shop {
    ///     name: &'static str,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = service_fn(|req: Request<()>| async move {
    ///     let envelope = RequestEnvelope::from_request(&req).expect("enveloped");
    ///     let shop = envelope.shared::<Shop>().expect("shared by the layer");
    ///     Ok::<_, std::convert::Infallible>(Response::new(shop.name))
    /// });
    /// let service = EnvelopeLayer::new().share(Shop { name: "shop" }).layer(app);
    /// let res = service.oneshot(Request::new(())).await.unwrap();
    /// assert_eq!(*res.body(), "shop");
    /// # }
    /// ```
    #[must_use]
    pub fn share<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.settings_mut().shared = Some(Arc::new(value));
        self
    }

    /// The header that carries the external id in, and the id out.
    #[must_use]
    pub fn header(mut self, name: HeaderName) -> Self {
        self.settings_mut().header = name;
        self
    }

    /// Which id is written on the response.
    #[must_use]
    pub fn response_id(mut self, which: ResponseId) -> Self {
        self.settings_mut().response_id = which;
        self
    }

    /// Keeps a copy of each request's headers in its envelope
    /// ([`RequestEnvelope::headers`](crate::RequestEnvelope::headers)), for a debug console to
    /// show. Off by default: the copy costs an allocation per request.
    #[must_use]
    pub fn keep_headers(mut self, keep: bool) -> Self {
        self.settings_mut().keep_headers = keep;
        self
    }

    /// Whether the envelope reads the W3C `traceparent` (and keeps `tracestate`) a request
    /// arrives with ([`RequestEnvelope::trace_context`](crate::RequestEnvelope::trace_context)).
    /// On by default. A value the spec refuses (version `ff`, an all-zero id, a wrong length,
    /// upper-case hex) is dropped and counted in `traceparent_invalid_total`, and the request is
    /// treated as if it had none.
    ///
    /// The trace id is then recorded on the current span's `trace_id` field (for spans that
    /// declare one), and the error layer writes it in error bodies next to the error id.
    #[must_use]
    pub fn read_traceparent(mut self, read: bool) -> Self {
        self.settings_mut().read_traceparent = read;
        self
    }

    /// Whether a request without a valid `traceparent` starts a trace of its own: its trace id
    /// is then its internal id's sixteen bytes, so the two name each other. Off by default;
    /// the `AsgiServer` turns it on (`[logging] trace_context`).
    #[must_use]
    pub fn start_traces(mut self, start: bool) -> Self {
        self.settings_mut().start_traces = start;
        self
    }

    /// How many `traceparent` headers this layer and its clones refused.
    #[must_use]
    pub fn invalid_traceparents(&self) -> u64 {
        self.settings.invalid_traceparent.get()
    }

    /// How many external ids have been refused by this layer and its clones.
    #[must_use]
    pub fn invalid_external_ids(&self) -> u64 {
        self.settings.invalid.get()
    }

    /// Registers `request_id_invalid_total` (refused external ids) in a prometheus-client
    /// registry, so it is served with every other metric.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "request_id_invalid",
            "External request ids refused for not matching ^[A-Za-z0-9._:-]{1,128}$",
            self.settings.invalid.clone(),
        );
        registry.register(
            "traceparent_invalid",
            "traceparent headers refused for breaking the W3C Trace Context format",
            self.settings.invalid_traceparent.clone(),
        );
    }
}

impl Default for EnvelopeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EnvelopeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeLayer")
            .field("header", &self.settings.header)
            .field("response_id", &self.settings.response_id)
            .field("keep_headers", &self.settings.keep_headers)
            .field("read_traceparent", &self.settings.read_traceparent)
            .field("start_traces", &self.settings.start_traces)
            .finish()
    }
}

impl<S> Layer<S> for EnvelopeLayer {
    type Service = EnvelopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnvelopeService {
            inner,
            settings: self.settings.clone(),
        }
    }
}
