use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use rustls::pki_types::CertificateDer;
use tokio::{sync::mpsc, time::Instant};

use crate::{Notification, Notifier, NotifyFuture};

/// The longest wait between two attempts; a longer backoff is cut to it when the notifier is
/// built.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The most bytes of a webhook's response body that are read (and discarded) before the
/// connection is given up.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What became of a notification handed to a [`WebhookNotifier`]: the `outcome` label of
/// `webhook_notifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Delivered: the endpoint answered 2xx.
    Sent,
    /// Given up: a final refusal, or every attempt failed.
    Failed,
    /// One attempt failed and another follows.
    Retried,
    /// Not queued: the queue was full.
    Dropped,
    /// Not sent: the same de-duplication key was sent within the window.
    Deduplicated,
}

impl Outcome {
    /// The label value: `"sent"`, `"failed"`, `"retried"`, `"dropped"` or `"deduplicated"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::Dropped => "dropped",
            Self::Deduplicated => "deduplicated",
        }
    }
}

/// Why a [`WebhookNotifier`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL does not parse, or is not `http://` or `https://` with a host.
    InvalidUrl(String),
    /// A setting is out of range.
    InvalidSetting(String),
    /// A root certificate was refused.
    InvalidCertificate(String),
    /// `build` was called outside a tokio runtime; the delivery task needs one.
    NoRuntime,
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "webhook url: {why}"),
            Self::InvalidSetting(why) => write!(f, "webhook: {why}"),
            Self::InvalidCertificate(why) => write!(f, "webhook root certificate: {why}"),
            Self::NoRuntime => f.write_str("webhook: build the notifier inside a tokio runtime"),
        }
    }
}

impl std::error::Error for WebhookError {}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Builder of a [`WebhookNotifier`]; see [`WebhookNotifier::builder`].
pub struct WebhookBuilder {
    url: Uri,
    timeout: Duration,
    queue: usize,
    retries: u32,
    backoff: Duration,
    dedup_window: Duration,
    roots: Vec<CertificateDer<'static>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookBuilder")
            .field("endpoint", &redacted(&self.url))
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl WebhookBuilder {
    /// Time limit of one delivery attempt (connect, send, response head). Default 5 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many notifications may wait for delivery; beyond that they are dropped and counted.
    /// Default 256.
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue = capacity;
        self
    }

    /// Attempts after the first, for failures worth retrying (connection errors, timeouts, 408,
    /// 429, 5xx). Default 3.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Wait before the first retry; it doubles at each retry, up to [`MAX_BACKOFF`] (30 s).
    /// Default 500 ms. A longer value is cut to [`MAX_BACKOFF`].
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Notifications with the same de-duplication key are sent once per window. Default 5 min.
    #[must_use]
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Trusts this certificate (DER) as a root, besides the system's roots: for a private CA.
    #[must_use]
    pub fn root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Adds a header to every request, such as an authorization token.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Starts the delivery task and returns the notifier.
    ///
    /// # Errors
    ///
    /// A setting out of range, a refused root certificate, or no tokio runtime.
    pub fn build(self) -> Result<WebhookNotifier, WebhookError> {
        if self.queue == 0 {
            return Err(WebhookError::InvalidSetting(
                "queue capacity must be at least 1".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(WebhookError::InvalidSetting(
                "timeout must be more than zero".into(),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebhookError::NoRuntime)?;
        let client = https_client(&self.roots)?;
        let (tx, rx) = mpsc::channel(self.queue);
        let outcomes = Family::<OutcomeLabel, Counter>::default();
        let endpoint = redacted(&self.url);
        let delivery = Delivery {
            client,
            url: self.url,
            headers: self.headers,
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff.min(MAX_BACKOFF),
            outcomes: outcomes.clone(),
            endpoint: endpoint.clone(),
        };
        runtime.spawn(delivery.run(rx));
        Ok(WebhookNotifier {
            inner: Arc::new(WebhookInner {
                tx,
                dedup: Mutex::new(HashMap::new()),
                dedup_window: self.dedup_window,
                outcomes,
                dropped: AtomicU64::new(0),
                endpoint,
            }),
        })
    }
}

/// A [`Notifier`] that POSTs each notification as JSON to a URL, over HTTP or HTTPS (rustls).
///
/// Delivery never holds up the caller and never grows memory without bound:
/// - `notify` only puts the notification in a bounded queue; when the queue is full the
///   notification is dropped, counted (`outcome="dropped"`) and logged;
/// - one background task sends the queue in order, each attempt limited by the timeout, retrying
///   transient failures with exponential backoff;
/// - the same de-duplication key is sent once per window (`outcome="deduplicated"`).
///
/// The URL's path and query are never logged: webhook URLs often carry their secret there.
///
/// Cloning is cheap; every clone feeds the same queue. The task ends when the last clone is
/// dropped and the queue is empty.
#[derive(Clone)]
pub struct WebhookNotifier {
    inner: Arc<WebhookInner>,
}

struct WebhookInner {
    tx: mpsc::Sender<Notification>,
    dedup: Mutex<HashMap<String, Instant>>,
    dedup_window: Duration,
    outcomes: Family<OutcomeLabel, Counter>,
    dropped: AtomicU64,
    endpoint: String,
}

/// The most de-duplication keys remembered; past it, expired keys are forgotten first.
const DEDUP_KEYS: usize = 4096;

impl WebhookNotifier {
    /// Starts building a notifier for `url` (`http://` or `https://`).
    ///
    /// # Errors
    ///
    /// The URL does not parse or has another scheme.
    pub fn builder(url: &str) -> Result<WebhookBuilder, WebhookError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| WebhookError::InvalidUrl(format!("{e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(WebhookError::InvalidUrl(
                    "the scheme must be http or https".into(),
                ))
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(WebhookError::InvalidUrl("a host is required".into()));
        }
        Ok(WebhookBuilder {
            url: uri,
            timeout: Duration::from_secs(5),
            queue: 256,
            retries: 3,
            backoff: Duration::from_millis(500),
            dedup_window: Duration::from_secs(300),
            roots: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Registers `webhook_notifications_total{outcome}` (sent, failed, retried, dropped,
    /// deduplicated) in a prometheus-client registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "webhook_notifications",
            "Webhook notifications by outcome",
            self.inner.outcomes.clone(),
        );
    }

    /// How many notifications had `outcome` so far.
    #[must_use]
    pub fn outcome_count(&self, outcome: Outcome) -> u64 {
        counter(&self.inner.outcomes, outcome).get()
    }

    fn is_duplicate(&self, key: &str) -> bool {
        if self.inner.dedup_window.is_zero() {
            return false;
        }
        let now = Instant::now();
        let window = self.inner.dedup_window;
        let mut seen = self
            .inner
            .dedup
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = seen.get(key) {
            if now.saturating_duration_since(*at) < window {
                return true;
            }
        }
        if seen.len() >= DEDUP_KEYS {
            seen.retain(|_, at| now.saturating_duration_since(*at) < window);
            if seen.len() >= DEDUP_KEYS {
                // Still full of live keys: forget them rather than grow; at worst a repeat is sent.
                seen.clear();
            }
        }
        seen.insert(key.to_owned(), now);
        false
    }

    fn count(&self, outcome: Outcome) {
        counter(&self.inner.outcomes, outcome).inc();
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        if self.is_duplicate(&notification.dedup_key) {
            self.count(Outcome::Deduplicated);
        } else if self.inner.tx.try_send(notification).is_err() {
            self.count(Outcome::Dropped);
            let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8, ... drops: visible, but a flood cannot flood the log too.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    endpoint = %self.inner.endpoint,
                    dropped,
                    "webhook queue full: notification dropped"
                );
            }
        }
        Box::pin(std::future::ready(()))
    }
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("endpoint", &self.inner.endpoint)
            .field(
                "queued",
                &(self.inner.tx.max_capacity() - self.inner.tx.capacity()),
            )
            .finish_non_exhaustive()
    }
}

/// Scheme, host and port only: the path and query of a webhook URL are often its secret.
fn redacted(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}/…"),
        None => format!("{scheme}://{host}/…"),
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn https_client(extra_roots: &[CertificateDer<'static>]) -> Result<HttpsClient, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // The system's roots; a certificate the platform store holds but rustls cannot parse is
    // skipped rather than failing the whole notifier.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for der in extra_roots {
        roots
            .add(der.clone())
            .map_err(|e| WebhookError::InvalidCertificate(e.to_string()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::InvalidSetting(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

struct Delivery {
    client: HttpsClient,
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    outcomes: Family<OutcomeLabel, Counter>,
    endpoint: String,
}

enum Attempt {
    Sent,
    Retry(String),
    GiveUp(String),
}

impl Delivery {
    async fn run(self, mut rx: mpsc::Receiver<Notification>) {
        while let Some(notification) = rx.recv().await {
            let body = match serde_json::to_vec(&notification) {
                Ok(body) => Bytes::from(body),
                Err(e) => {
                    tracing::error!(error = %e, "webhook: notification not serialisable");
                    continue;
                }
            };
            let traceparent = notification
                .request
                .as_ref()
                .and_then(|r| r.traceparent.as_deref())
                .and_then(|t| HeaderValue::from_str(t).ok());
            self.deliver(body, &notification.kind, traceparent.as_ref())
                .await;
        }
    }

    async fn deliver(&self, body: Bytes, kind: &str, traceparent: Option<&HeaderValue>) {
        let mut wait = self.backoff;
        for attempt in 0..=self.retries {
            let why = match self.attempt(body.clone(), traceparent).await {
                Attempt::Sent => {
                    self.count(Outcome::Sent);
                    return;
                }
                Attempt::GiveUp(why) => {
                    self.count(Outcome::Failed);
                    tracing::warn!(endpoint = %self.endpoint, kind, reason = %why, "webhook refused the notification");
                    return;
                }
                Attempt::Retry(why) => why,
            };
            if attempt == self.retries {
                self.count(Outcome::Failed);
                tracing::warn!(endpoint = %self.endpoint, kind, reason = %why, attempts = attempt + 1, "webhook delivery failed");
                return;
            }
            self.count(Outcome::Retried);
            tracing::debug!(endpoint = %self.endpoint, reason = %why, "webhook attempt failed; retrying");
            tokio::time::sleep(wait).await;
            wait = next_wait(wait);
        }
    }

    async fn attempt(&self, body: Bytes, traceparent: Option<&HeaderValue>) -> Attempt {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("genro-notify/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(traceparent) = traceparent {
            request = request.header(genro_envelope::TRACEPARENT, traceparent);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Attempt::GiveUp(e.to_string()),
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read (and discard) a bounded amount of the body so the connection can be reused;
            // an endpoint that sends more only loses its connection.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt::Retry(format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => Attempt::Retry(format!("connection: {e}")),
            Ok(Ok(status)) if status.is_success() => Attempt::Sent,
            Ok(Ok(status))
                if status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT =>
            {
                Attempt::Retry(format!("status {status}"))
            }
            Ok(Ok(status)) => Attempt::GiveUp(format!("status {status}")),
        }
    }

    fn count(&self, outcome: Outcome) {
        counter(&self.outcomes, outcome).inc();
    }
}

/// The counter of `outcome` in `outcomes`.
fn counter(outcomes: &Family<OutcomeLabel, Counter>, outcome: Outcome) -> Counter {
    outcomes.get_or_create_owned(&OutcomeLabel {
        outcome: outcome.as_str(),
    })
}

/// The wait after `wait`: doubled, never past [`MAX_BACKOFF`], never overflowing.
fn next_wait(wait: Duration) -> Duration {
    wait.saturating_mul(2).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_overflows() {
        assert_eq!(
            next_wait(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
        assert_eq!(next_wait(Duration::from_secs(20)), MAX_BACKOFF);
        assert_eq!(next_wait(Duration::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_huge_backoff_is_cut_when_built() {
        let notifier = WebhookNotifier::builder("http://127.0.0.1:9/")
            .unwrap()
            .backoff(Duration::MAX)
            .timeout(Duration::MAX)
            .dedup_window(Duration::MAX)
            .build();
        assert!(notifier.is_ok());
    }
}
