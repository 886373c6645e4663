//! [`RemoteDebugServer`]: the listener, the allowlist at accept, the `Host` and `Origin` checks
//! at the handshake, the web page, and the WebSocket upgrade to a session.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    sync::{atomic::AtomicUsize, Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use genro_registry::EnvelopeRegistry;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle, time::Instant};
use tokio_tungstenite::{
    tungstenite::{handshake::derive_accept_key, protocol::Role, protocol::WebSocketConfig},
    WebSocketStream,
};

use crate::{
    allow::AllowList,
    auth::Limiter,
    config::{DebugConfig, DebugError},
    hold::Holds,
    pending::PendingPlace,
    session,
    state::{stopped, LogFilter, Metrics, State},
};

const INDEX_HTML: &str = include_str!("page/index.html");
const CONSOLE_JS: &str = include_str!("page/console.js");
const CONSOLE_CSS: &str = include_str!("page/console.css");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The remote debug console: a WebSocket server on its own port, where an authenticated client
/// lists, inspects and cancels in-flight requests, and attaches to requests held on error.
/// See the [crate documentation](crate) for the protocol and the security model.
///
/// ```no_run
/// # async fn example(registry: genro_registry::EnvelopeRegistry) -> Result<(), genro_debug::DebugError> {
/// use genro_debug::{DebugConfig, RemoteDebugServer, Secret};
///
/// let secret = Secret::new(std::env::var("DEBUG_SECRET").unwrap_or_default());
/// let console = RemoteDebugServer::new(registry, DebugConfig::new(secret))?;
/// let running = console.bind().await?;
/// println!("debug console on {}", running.local_addr());
/// // ... and when the server stops:
/// running.stop().await;
/// # Ok(())
/// # }
/// ```
pub struct RemoteDebugServer {
    config: DebugConfig,
    registry: EnvelopeRegistry,
    holds: Option<Holds>,
    log_filter: Option<LogFilter>,
    metrics: Metrics,
}

impl RemoteDebugServer {
    /// A console over `registry`'s in-flight requests.
    ///
    /// # Errors
    ///
    /// The configuration is not usable: a secret shorter than 16 bytes, a bound of zero.
    pub fn new(registry: EnvelopeRegistry, config: DebugConfig) -> Result<Self, DebugError> {
        config.validate()?;
        Ok(Self {
            config,
            registry,
            holds: None,
            log_filter: None,
            metrics: Metrics::default(),
        })
    }

    /// The requests held on error that `held`, `attach`, `continue` and `release` work on
    /// (install the same [`Holds`] in the error layer).
    #[must_use]
    pub fn holds(mut self, holds: &Holds) -> Self {
        self.holds = Some(holds.clone());
        self
    }

    /// What `log-level FILTER` calls to change the log filter.
    #[must_use]
    pub fn log_filter(
        mut self,
        set: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.log_filter = Some(Arc::new(set));
        self
    }

    /// Registers `debug_sessions`, `debug_logins_total{outcome}` and
    /// `debug_refused_connections_total`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "debug_sessions",
            "Debug console sessions open",
            self.metrics.sessions.clone(),
        );
        registry.register(
            "debug_logins",
            "Debug console logins, by outcome",
            self.metrics.logins.clone(),
        );
        registry.register(
            "debug_refused_connections",
            "Connections to the debug console refused by allowed_ips, or closed before login to \
             make room for a newer one",
            self.metrics.refused_connections.clone(),
        );
    }

    /// Binds `host:port` and serves.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn bind(self) -> Result<RunningDebugServer, DebugError> {
        let addr = format!("{}:{}", self.config.host, self.config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| DebugError::Bind { addr, source })?;
        Ok(self.serve(listener))
    }

    /// Serves on `listener`, which the caller bound.
    #[must_use]
    pub fn serve(self, listener: TcpListener) -> RunningDebugServer {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (stop_tx, stop) = watch::channel(false);
        let allow = Arc::new(ArcSwap::from_pointee(self.config.allowed_ips.clone()));
        let state = Arc::new(State {
            limiter: Limiter::new(self.config.failures),
            pending: Arc::default(),
            config: self.config,
            registry: self.registry,
            holds: self.holds,
            log_filter: self.log_filter,
            sessions: AtomicUsize::new(0),
            metrics: self.metrics,
            stop,
        });
        tracing::info!(
            target: "genro_debug::audit",
            address = %local_addr,
            "debug console listening on http://{local_addr}/"
        );
        let task = tokio::spawn(accept_loop(listener, state, allow.clone()));
        RunningDebugServer {
            local_addr,
            allow,
            stop: stop_tx,
            task,
        }
    }
}

impl fmt::Debug for RemoteDebugServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDebugServer")
            .field("config", &self.config)
            .field("holds", &self.holds)
            .field("log_filter", &self.log_filter.is_some())
            .finish_non_exhaustive()
    }
}

/// A console that is serving: its address, its live allowlist, and its stop.
#[derive(Debug)]
pub struct RunningDebugServer {
    local_addr: SocketAddr,
    allow: Arc<ArcSwap<AllowList>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningDebugServer {
    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the allowlist; it applies to connections accepted from now on.
    pub fn set_allowed_ips(&self, allowed: AllowList) {
        self.allow.store(Arc::new(allowed));
    }

    /// Stops listening and closes every session (each is told the server is shutting down).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, allow: Arc<ArcSwap<AllowList>>) {
    let mut stop = state.stop.clone();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait, rather than spin.
                    tracing::warn!(error = %e, "debug console: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Checked on the socket's own peer address, before a byte is read or written.
        if !allow.load().allows(peer.ip()) {
            state.metrics.refused_connections.inc();
            tracing::warn!(
                target: "genro_debug::audit",
                peer = %peer,
                "connection refused: not in allowed_ips"
            );
            drop(stream);
            continue;
        }
        // Until it logs in, a connection holds a place of the pending budget, not a session,
        // and has login_timeout from now to log in.
        let (place, evicted) = state.pending.admit();
        if evicted {
            state.metrics.refused_connections.inc();
            tracing::warn!(target: "genro_debug::audit", peer = %peer, "the oldest connection not logged in was closed to make room");
        }
        let deadline = Instant::now() + state.config.login_timeout;
        let state = state.clone();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(serve_connection(stream, peer, state, place, deadline));
    }
    // Sessions see the stop too; wait for them to say goodbye.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

/// A connection before login: what the upgrade to a session takes with it.
struct Before {
    place: Mutex<Option<PendingPlace>>,
    deadline: Instant,
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    place: PendingPlace,
    deadline: Instant,
) {
    let _ = stream.set_nodelay(true);
    let mut taken = place.taken();
    let before = Arc::new(Before {
        place: Mutex::new(Some(place)),
        deadline,
    });
    let service = hyper::service::service_fn({
        let state = state.clone();
        move |req| {
            let state = state.clone();
            let before = before.clone();
            async move { Ok::<_, std::convert::Infallible>(route(req, peer, &state, &before)) }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.login_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut stop = state.stop.clone();
    // The connection ends at its upgrade (the session goes on in a task of its own, with the
    // place), or at login_timeout from its accept, or when a newer connection takes its place.
    tokio::select! {
        _ = conn => {}
        () = tokio::time::sleep_until(deadline) => {
            tracing::debug!(target: "genro_debug::audit", peer = %peer, "connection closed: not logged in within debug.login_timeout");
        }
        () = taken.wait() => {}
        () = stopped(&mut stop) => {}
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut res = text(StatusCode::OK, body);
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// The host part of a `Host` header: without the port, and without the brackets of an IPv6
/// literal.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a client may use `host`: an IP literal, `localhost`, or a configured name. A name
/// an attacker controls (DNS rebinding: evil.example resolving to 127.0.0.1) is refused.
pub(crate) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host);
    !name.is_empty()
        && (name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || allowed.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// Whether the `Origin` of a browser request is the console's own page. Clients that are not
/// browsers send none.
pub(crate) fn origin_allowed(origin: Option<&HeaderValue>, host: &str) -> bool {
    let Some(origin) = origin else { return true };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    state: &Arc<State>,
    before: &Before,
) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !host_allowed(&host, &state.config.allowed_hosts) {
        tracing::warn!(target: "genro_debug::audit", peer = %peer, host = %host.escape_debug(), "refused: unexpected Host (add it to debug.allowed_hosts if it is yours)");
        return text(StatusCode::FORBIDDEN, "forbidden: unexpected Host\n");
    }
    if !origin_allowed(req.headers().get(header::ORIGIN), &host) {
        tracing::warn!(target: "genro_debug::audit", peer = %peer, "refused: foreign Origin");
        return text(StatusCode::FORBIDDEN, "forbidden: foreign Origin\n");
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => asset(INDEX_HTML, "text/html; charset=utf-8"),
        (&Method::GET, "/console.js") => asset(CONSOLE_JS, "text/javascript; charset=utf-8"),
        (&Method::GET, "/console.css") => asset(CONSOLE_CSS, "text/css; charset=utf-8"),
        (&Method::GET, "/ws") => upgrade(req, peer, host, state, before),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn upgrade(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    host: String,
    state: &Arc<State>,
    before: &Before,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, true, true, Some(key)) = (
        has(header::UPGRADE, "websocket"),
        has(header::CONNECTION, "upgrade"),
        has(header::SEC_WEBSOCKET_VERSION, "13"),
        key,
    ) else {
        return text(
            StatusCode::BAD_REQUEST,
            "this is the console's WebSocket: connect with a WebSocket client\n",
        );
    };
    // One upgrade per connection: the place goes with it.
    let Some(place) = before
        .place
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    else {
        return text(StatusCode::BAD_REQUEST, "one WebSocket per connection\n");
    };
    let deadline = before.deadline;
    let upgrade = hyper::upgrade::on(&mut req);
    let state = state.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let config = WebSocketConfig::default()
            .max_message_size(Some(state.config.max_message_size))
            .max_frame_size(Some(state.config.max_message_size));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        session::run(ws, peer, host, state, place, deadline).await;
    });
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ip_literals_localhost_and_configured_names_only() {
        let none: &[String] = &[];
        for ok in [
            "127.0.0.1:8001",
            "127.0.0.1",
            "[::1]:8001",
            "localhost:8001",
            "LOCALHOST",
            "10.1.2.3:80",
        ] {
            assert!(host_allowed(ok, none), "{ok}");
        }
        for bad in [
            "evil.example:8001",
            "evil.example",
            "",
            ":8001",
            "127.0.0.1.evil.example",
        ] {
            assert!(!host_allowed(bad, none), "{bad}");
        }
        assert!(host_allowed(
            "debug.internal:8001",
            &["debug.internal".into()]
        ));
    }

    #[test]
    fn origins_must_be_the_page_itself() {
        let host = "127.0.0.1:8001";
        assert!(origin_allowed(None, host));
        let ok = HeaderValue::from_static("http://127.0.0.1:8001");
        assert!(origin_allowed(Some(&ok), host));
        for bad in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:8002",
            "file://",
        ] {
            assert!(
                !origin_allowed(Some(&HeaderValue::from_static(bad)), host),
                "{bad}"
            );
        }
    }
}
