use std::{
    borrow::Cow,
    fmt,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri, Version};
use tokio::time::Instant;
use uuid::{Builder, Uuid};

use crate::{
    client::client_from, phase::Phase, short_id::ShortId, signal::Cancel,
    trace_context::TraceContext,
};

pub(crate) use crate::trace_context::TraceStart;

/// What a layer shares with every envelope it makes ([`EnvelopeLayer::share`](crate::EnvelopeLayer::share)).
pub(crate) type Shared = Arc<dyn std::any::Any + Send + Sync>;

/// The wall clock (as time since the Unix epoch) and the monotonic clock, read once together.
/// Every later wall-clock time is this plus monotonic time elapsed, so a request reads one clock.
fn anchor() -> &'static (Duration, std::time::Instant) {
    static ANCHOR: OnceLock<(Duration, std::time::Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        (wall, std::time::Instant::now())
    })
}

/// Time since the Unix epoch at the monotonic instant `at`.
fn since_epoch(at: Instant) -> Duration {
    let (wall, mono) = anchor();
    *wall + at.into_std().saturating_duration_since(*mono)
}

/// The most annotations one envelope keeps; later keys are refused so that a handler stuck in a
/// loop cannot grow an in-flight envelope without bound.
pub const MAX_ANNOTATIONS: usize = 64;

/// The longest annotation key kept, in bytes; a longer key is cut (visibly) to this length.
pub const MAX_ANNOTATION_KEY_LEN: usize = 64;

/// The longest annotation value kept, in bytes; a longer value is cut to this length, ending in
/// a marker that says how many bytes were dropped. Annotations reach logs, webhook payloads and
/// the debug console, so one value can never make any of them large.
pub const MAX_ANNOTATION_VALUE_LEN: usize = 1024;

/// What [`RequestEnvelope::annotate`] did with a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Annotated {
    /// Kept as given (a key set twice keeps its last value).
    Stored,
    /// Kept, but the key or the value was longer than its limit and was cut.
    Truncated,
    /// Not kept: the envelope already holds [`MAX_ANNOTATIONS`] distinct keys.
    Refused,
}

impl Annotated {
    /// Whether the note was kept, whole or cut.
    #[must_use]
    pub const fn is_kept(self) -> bool {
        !matches!(self, Self::Refused)
    }
}

/// Everything known about one request, shared by every layer that handles it.
///
/// An envelope is created once per request by [`EnvelopeLayer`](crate::EnvelopeLayer) and put in
/// the request extensions as `Arc<RequestEnvelope>`. The registry, the watchdog, the error layer
/// and the debug console all read the same envelope, so an id in a log line, an error body, a
/// metric exemplar and the debug console always agree.
///
/// The immutable part (ids, method, URI, times) is read without locking. The route, the phase and
/// the annotations can change while the request runs and use their own cheap synchronisation.
pub struct RequestEnvelope {
    internal_id: Uuid,
    external_id: Option<HeaderValue>,
    method: Method,
    uri: Uri,
    version: Version,
    client: Option<SocketAddr>,
    started: Instant,
    phase: AtomicU8,
    // Set while the envelope is built (no synchronisation needed), or later, once, by a layer
    // that learns the route after the envelope is shared.
    route: Option<RouteName>,
    late_route: OnceLock<Arc<str>>,
    annotations: Mutex<Vec<(Cow<'static, str>, String)>>,
    // Only when the layer keeps them (`EnvelopeLayer::keep_headers`), for the debug console.
    headers: Option<Box<HeaderMap>>,
    // In the envelope itself: the server cancels through every request's (the drain), so a
    // lazily boxed one would be an allocation per request.
    cancel: Cancel,
    // The tokio task that made the envelope (shown by the console, to match tokio-console).
    task: Option<tokio::task::Id>,
    // Where the request stands in a W3C trace, when the layer reads or starts traces.
    trace: Option<TraceContext>,
    // What the layer that made the envelope shares with every request.
    shared: Option<Shared>,
    // What a dumper asks the request's future for its trace through.
    #[cfg(genro_taskdump)]
    trace_hook: crate::trace_hook::Hook,
}

impl RequestEnvelope {
    /// A new envelope for a request with this method and URI, with a fresh internal id.
    ///
    /// Most code never calls this: [`EnvelopeLayer`](crate::EnvelopeLayer) builds the envelope.
    /// It is public for servers that are not tower-based and for tests.
    #[must_use]
    pub fn new(method: Method, uri: Uri) -> Self {
        Self::assemble(
            method,
            uri,
            Version::HTTP_11,
            None,
            None,
            None,
            None,
            None,
            None,
        )
    }

    /// Builds the envelope in one expression so that it can be written straight into its `Arc`.
    /// The optional parts are arguments, not a struct with `Default`: that struct is moved rather
    /// than written in place, which costs more instructions per request (`benches/callgrind.sh`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        method: Method,
        uri: Uri,
        version: Version,
        client: Option<SocketAddr>,
        external_id: Option<HeaderValue>,
        route: Option<RouteName>,
        headers: Option<Box<HeaderMap>>,
        trace: Option<TraceStart>,
        shared: Option<Shared>,
    ) -> Self {
        // A thread-local read: the id of the task polling the service, when there is one.
        let task = tokio::task::try_id();
        let started = Instant::now();
        let since = since_epoch(started);
        // Not `as_millis`: that divides a u128.
        let unix_ms = since.as_secs() * 1_000 + u64::from(since.subsec_millis());
        // 74 random bits after the millisecond timestamp, from fastrand's thread-local wyrand
        // generator: no syscall and no lock per id (uuid's own `now_v7` serialises on a global
        // mutex). wyrand is fast and well distributed but not cryptographically secure: ids are
        // correlation handles, unique and time-ordered, never secrets or capabilities.
        let random = fastrand::u128(..).to_le_bytes();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&random[..10]);
        let internal_id = Builder::from_unix_timestamp_millis(unix_ms, &tail).into_uuid();
        let trace = trace.map(|start| TraceContext::new(&internal_id, start));
        Self {
            internal_id,
            external_id,
            method,
            uri,
            version,
            client,
            started,
            phase: AtomicU8::new(0),
            route,
            late_route: OnceLock::new(),
            annotations: Mutex::new(Vec::new()),
            headers,
            cancel: Cancel::default(),
            task,
            trace,
            shared,
            #[cfg(genro_taskdump)]
            trace_hook: crate::trace_hook::Hook::default(),
        }
    }

    /// A new envelope describing `req`: method, URI, version and the client address found in its
    /// extensions. The external id is not read; [`EnvelopeLayer`](crate::EnvelopeLayer) does that.
    #[must_use]
    pub fn for_request<B>(req: &Request<B>) -> Self {
        Self::assemble(
            req.method().clone(),
            req.uri().clone(),
            req.version(),
            client_from(req.extensions()),
            None,
            None,
            None,
            None,
            None,
        )
    }

    /// Sets the external id, if it passes [`is_valid_external_id`](crate::is_valid_external_id).
    ///
    /// # Errors
    ///
    /// Returns [`InvalidExternalId`] when the id is refused; nothing of the value is kept.
    pub fn with_external_id(mut self, id: &str) -> Result<Self, InvalidExternalId> {
        if crate::is_valid_external_id(id.as_bytes()) {
            self.external_id = HeaderValue::from_str(id).ok();
            Ok(self)
        } else {
            Err(InvalidExternalId { _priv: () })
        }
    }

    /// Sets the client address.
    #[must_use]
    pub fn with_client(mut self, client: SocketAddr) -> Self {
        self.client = Some(client);
        self
    }

    /// The internal id: a UUIDv7, unique and roughly time-ordered.
    #[must_use]
    pub fn internal_id(&self) -> Uuid {
        self.internal_id
    }

    /// The internal id as a hyphenated lowercase string.
    #[must_use]
    pub fn internal_id_string(&self) -> String {
        self.internal_id.hyphenated().to_string()
    }

    /// The id the client or an upstream proxy sent, when it was valid.
    #[must_use]
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_ref().and_then(|v| v.to_str().ok())
    }

    pub(crate) fn external_id_header(&self) -> Option<&HeaderValue> {
        self.external_id.as_ref()
    }

    /// Where the request stands in a W3C trace: the caller's trace when it sent a valid
    /// `traceparent`, a trace started here when the layer starts them
    /// ([`EnvelopeLayer::start_traces`](crate::EnvelopeLayer::start_traces)), else `None`.
    #[must_use]
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// Eight lowercase hex characters: the error id shown to users and written in logs.
    ///
    /// They are the last eight of the internal id, which are random. (The first eight of a UUIDv7
    /// are the high bits of its timestamp and repeat for about 65 seconds.)
    #[must_use]
    pub fn short_id(&self) -> ShortId {
        ShortId::of(&self.internal_id)
    }

    /// What the layer that made this envelope shares with every request
    /// ([`EnvelopeLayer::share`](crate::EnvelopeLayer::share)), when it is a `T`.
    #[must_use]
    pub fn shared<T: std::any::Any>(&self) -> Option<&T> {
        self.shared.as_deref()?.downcast_ref()
    }

    /// The request method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI, as received.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request path, without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The HTTP version of the request.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// The client's socket address, when the server supplied it.
    #[must_use]
    pub fn client(&self) -> Option<SocketAddr> {
        self.client
    }

    /// Wall-clock time at which the envelope was created.
    ///
    /// Derived from the monotonic start and one wall-clock reading taken when the first envelope
    /// of the process was made, so it does not jump with wall-clock adjustments.
    #[must_use]
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + since_epoch(self.started)
    }

    /// Monotonic time at which the envelope was created (tokio's clock, so paused-time tests see
    /// requests age).
    #[must_use]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// How long ago the envelope was created.
    #[must_use]
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// axum's `MatchedPath` of the request, when the envelope was made after routing.
    #[cfg(feature = "axum")]
    #[must_use]
    pub fn matched_path(&self) -> Option<&axum::extract::MatchedPath> {
        match &self.route {
            Some(RouteName::Axum(path)) => Some(path),
            None => None,
        }
    }

    /// The route template (`/users/{id}`, `/pkg.Service/Method`), once a layer that knows it has
    /// set it.
    #[must_use]
    pub fn route(&self) -> Option<&str> {
        match &self.route {
            Some(route) => Some(route.as_str()),
            None => self.late_route.get().map(|r| &**r),
        }
    }

    /// Sets the route template. The first value set wins; returns whether this call set it.
    pub fn set_route(&self, route: impl Into<Arc<str>>) -> bool {
        self.route.is_none() && self.late_route.set(route.into()).is_ok()
    }

    /// Where the request is in its life.
    #[must_use]
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// Records where the request is in its life. Called by the layers that track it.
    pub fn set_phase(&self, phase: Phase) {
        let value = match phase {
            Phase::Handling => 0,
            Phase::Streaming => 1,
            Phase::Upgraded => 2,
            Phase::Finished => 3,
            Phase::Held => 4,
        };
        self.phase.store(value, Ordering::Relaxed);
    }

    /// Adds a key/value note that the watchdog, the error layer and the debug console show with
    /// this request. A key set twice keeps the last value.
    ///
    /// Keys are cut to [`MAX_ANNOTATION_KEY_LEN`] bytes and values to
    /// [`MAX_ANNOTATION_VALUE_LEN`], with a visible marker ([`Annotated::Truncated`]); once
    /// [`MAX_ANNOTATIONS`] distinct keys are present, new keys are refused
    /// ([`Annotated::Refused`]).
    pub fn annotate(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Annotated {
        let mut key = key.into();
        let mut value = value.into();
        let mut outcome = Annotated::Stored;
        if key.len() > MAX_ANNOTATION_KEY_LEN {
            key = Cow::Owned(crate::truncate::truncated(&key, MAX_ANNOTATION_KEY_LEN).into_owned());
            outcome = Annotated::Truncated;
        }
        if value.len() > MAX_ANNOTATION_VALUE_LEN {
            value = crate::truncate::truncated(&value, MAX_ANNOTATION_VALUE_LEN).into_owned();
            outcome = Annotated::Truncated;
        }
        let mut notes = self
            .annotations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = notes.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
            return outcome;
        }
        if notes.len() >= MAX_ANNOTATIONS {
            return Annotated::Refused;
        }
        notes.push((key, value));
        outcome
    }

    /// A copy of the annotations, in the order their keys were first set.
    #[must_use]
    pub fn annotations(&self) -> Vec<(String, String)> {
        let notes = self
            .annotations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        notes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The id of the tokio task that serves the request: the one that was running when the
    /// envelope was made, which is when the service was first called. Under hyper that is the
    /// connection's task for HTTP/1 and the stream's task for HTTP/2. `None` outside a tokio
    /// task (a service called from `block_on`, say). The debug console shows it, to find the
    /// request's task in tokio-console.
    #[must_use]
    pub fn task_id(&self) -> Option<tokio::task::Id> {
        self.task
    }

    #[cfg(genro_taskdump)]
    pub(crate) fn trace_hook(&self) -> &crate::trace_hook::Hook {
        &self.trace_hook
    }

    /// The request's headers, when the layer that made the envelope keeps them
    /// ([`EnvelopeLayer::keep_headers`](crate::EnvelopeLayer::keep_headers), off by default):
    /// for a debug console. They are the client's, secrets included; mask them before showing.
    #[must_use]
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_deref()
    }

    /// Asks the request to stop. A [`CancelLayer`](crate::CancelLayer) inside the layer that
    /// renders errors then drops the handler's future (so its drop guards run) and answers with
    /// the error [`Cancelled`](crate::Cancelled). Without one, nothing else happens. Returns
    /// whether this call asked first.
    pub fn cancel(&self) -> bool {
        self.cancel_signal().cancel()
    }

    /// Whether [`cancel`](Self::cancel) was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(crate) fn cancel_signal(&self) -> &Cancel {
        &self.cancel
    }

    /// The envelope of a request that went through [`EnvelopeLayer`](crate::EnvelopeLayer).
    #[must_use]
    pub fn from_request<B>(req: &Request<B>) -> Option<&Arc<Self>> {
        req.extensions().get::<Arc<Self>>()
    }

    /// The envelope stored in these extensions (of a request, or of `http::request::Parts`).
    #[must_use]
    pub fn from_extensions(extensions: &Extensions) -> Option<&Arc<Self>> {
        extensions.get::<Arc<Self>>()
    }
}

impl fmt::Debug for RequestEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query string is left out: it is where tokens end up, and Debug output reaches logs.
        f.debug_struct("RequestEnvelope")
            .field("internal_id", &self.internal_id.hyphenated())
            .field("external_id", &self.external_id())
            .field("method", &self.method)
            .field("path", &self.uri.path())
            .field("version", &self.version)
            .field("client", &self.client)
            .field("route", &self.route())
            .field("phase", &self.phase())
            .field("age", &self.age())
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// A route template, held without copying where its source allows.
pub(crate) enum RouteName {
    #[cfg(feature = "axum")]
    Axum(axum::extract::MatchedPath),
}

impl RouteName {
    #[cfg(feature = "axum")]
    pub(crate) fn from_extensions(extensions: &Extensions) -> Option<Self> {
        extensions
            .get::<axum::extract::MatchedPath>()
            .map(|p| Self::Axum(p.clone()))
    }

    #[cfg(not(feature = "axum"))]
    pub(crate) fn from_extensions(_: &Extensions) -> Option<Self> {
        None
    }

    fn as_str(&self) -> &str {
        // Without a framework feature the enum has no variants, and this match none either.
        match *self {
            #[cfg(feature = "axum")]
            Self::Axum(ref p) => p.as_str(),
        }
    }
}

/// The external id given to [`RequestEnvelope::with_external_id`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidExternalId {
    _priv: (),
}

impl fmt::Display for InvalidExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("external request id must match ^[A-Za-z0-9._:-]{1,128}$")
    }
}

impl std::error::Error for InvalidExternalId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_short_id_is_the_random_tail() {
        let a = RequestEnvelope::new(Method::GET, Uri::from_static("/"));
        let b = RequestEnvelope::new(Method::GET, Uri::from_static("/"));
        assert_eq!(a.internal_id().get_version_num(), 7);
        assert_ne!(a.internal_id(), b.internal_id());
        // Created in the same millisecond range, the short ids still differ.
        assert_ne!(a.short_id(), b.short_id());
        assert_eq!(a.short_id().len(), 8);
        assert!(a.internal_id_string().ends_with(a.short_id().as_str()));
    }

    #[test]
    fn annotations_replace_and_are_bounded() {
        let env = RequestEnvelope::new(Method::GET, Uri::from_static("/"));
        assert_eq!(env.annotate("user", "1"), Annotated::Stored);
        assert_eq!(env.annotate("user", "2"), Annotated::Stored);
        assert_eq!(env.annotations(), vec![("user".into(), "2".into())]);
        for i in 1..MAX_ANNOTATIONS {
            assert!(env.annotate(format!("k{i}"), "v").is_kept());
        }
        assert_eq!(env.annotate("one-too-many", "v"), Annotated::Refused);
        assert_eq!(env.annotations().len(), MAX_ANNOTATIONS);
    }

    #[test]
    fn a_huge_annotation_is_cut_visibly() {
        let env = RequestEnvelope::new(Method::GET, Uri::from_static("/"));
        let huge = "é".repeat(2 * 1024 * 1024); // 4 MiB of two-byte characters
        assert_eq!(env.annotate("payload", huge), Annotated::Truncated);
        assert_eq!(env.annotate("k".repeat(500), "v"), Annotated::Truncated);
        let notes = env.annotations();
        let (key, value) = &notes[0];
        assert_eq!(key, "payload");
        assert!(value.len() <= MAX_ANNOTATION_VALUE_LEN, "{}", value.len());
        assert!(
            value.ends_with("bytes cut]"),
            "{}",
            &value[value.len() - 40..]
        );
        assert!(value.starts_with("éé"));
        assert!(notes[1].0.len() <= MAX_ANNOTATION_KEY_LEN);
        assert!(notes[1].0.ends_with("bytes cut]"));
    }

    #[test]
    fn debug_leaves_out_the_query() {
        let env = RequestEnvelope::new(Method::GET, Uri::from_static("/login?token=s3cr3t"));
        let text = format!("{env:?}");
        assert!(text.contains("/login"));
        assert!(!text.contains("s3cr3t"));
    }

    #[test]
    fn route_is_set_once_and_phase_round_trips() {
        let env = RequestEnvelope::new(Method::GET, Uri::from_static("/users/7"));
        assert!(env.set_route("/users/{id}"));
        assert!(!env.set_route("/other"));
        assert_eq!(env.route(), Some("/users/{id}"));
        for p in [
            Phase::Handling,
            Phase::Streaming,
            Phase::Upgraded,
            Phase::Finished,
        ] {
            env.set_phase(p);
            assert_eq!(env.phase(), p);
        }
    }

    #[test]
    fn external_id_is_validated() {
        let env = RequestEnvelope::new(Method::GET, Uri::from_static("/"));
        assert!(env.with_external_id("bad id").is_err());
        let env = RequestEnvelope::new(Method::GET, Uri::from_static("/"));
        assert_eq!(
            env.with_external_id("abc-1").unwrap().external_id(),
            Some("abc-1")
        );
    }
}
