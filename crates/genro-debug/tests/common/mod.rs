//! A real app served by axum on a real socket, with the genro stack, cancellation and holds,
//! and a real console beside it.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::too_many_lines)] // a test reads as one scenario

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{routing::get, Router};
use genro_debug::{DebugConfig, Holds, RemoteDebugServer, RunningDebugServer, Secret};
use genro_envelope::{CancelLayer, Envelope, EnvelopeLayer};
use genro_errors::ErrorLayer;
use genro_metrics::MetricsCollector;
use genro_registry::EnvelopeRegistry;
use genro_stack::GenroLayer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower::ServiceBuilder;

pub const SECRET: &str = "a-test-secret-of-32-bytes-length";

pub struct Fixture {
    pub app: SocketAddr,
    pub console: RunningDebugServer,
    pub addr: String,
    pub registry: EnvelopeRegistry,
    pub holds: Holds,
    pub dropped: Arc<AtomicBool>,
    pub metrics: prometheus_client::registry::Registry,
}

impl Fixture {
    pub fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

struct Guard(Arc<AtomicBool>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The app: `/slow` waits for ever (with a drop guard), `/panic` annotates and panics,
/// `/hostile/…` annotates with its user agent and panics with it, `/notfound` returns a 404
/// error, `/ok`.
pub async fn fixture(
    configure: impl FnOnce(&mut DebugConfig),
    hold_timeout: Duration,
    max_held: usize,
) -> Fixture {
    // One global subscriber, installed before anything logs.
    genro_test_support::LogBuffer::global();
    let registry = EnvelopeRegistry::new();
    let holds = Holds::new(hold_timeout, max_held);
    let dropped = Arc::new(AtomicBool::new(false));
    let app: Router = Router::new()
        .route(
            "/slow",
            get({
                let dropped = dropped.clone();
                move |Envelope(envelope): Envelope| async move {
                    let _guard = Guard(dropped);
                    envelope.annotate("step", "waiting on the bank");
                    std::future::pending::<()>().await;
                    "never"
                }
            }),
        )
        .route(
            "/panic",
            get(|Envelope(envelope): Envelope| async move {
                envelope.annotate("order", "42");
                if envelope.path() == "/panic" {
                    panic!("boom while pricing order 42");
                }
                "unreachable"
            }),
        )
        .route("/ok", get(|| async { "fine" }))
        // What a hostile client writes reaches an annotation and the error message.
        .route(
            "/hostile/{*rest}",
            get(
                |Envelope(envelope): Envelope, headers: http::HeaderMap| async move {
                    let agent = headers
                        .get("user-agent")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default();
                    envelope.annotate("agent", agent.clone());
                    if envelope.path().starts_with("/hostile/") {
                        panic!("cannot serve {agent}");
                    }
                    "unreachable"
                },
            ),
        )
        .route(
            "/notfound",
            get(|| async {
                Err::<(), _>(
                    genro_errors::Error::msg("no such order")
                        .with_status(http::StatusCode::NOT_FOUND),
                )
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(
                    GenroLayer::new(&registry, &MetricsCollector::new())
                        .envelope(EnvelopeLayer::new().keep_headers(true))
                        .errors(holds.install(ErrorLayer::new())),
                )
                .layer(CancelLayer::new()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = DebugConfig::new(Secret::new(SECRET));
    config.port = 0;
    configure(&mut config);
    let server = RemoteDebugServer::new(registry.clone(), config)
        .unwrap()
        .holds(&holds);
    let mut metrics = prometheus_client::registry::Registry::default();
    server.register_metrics(&mut metrics);
    holds.register_metrics(&mut metrics);
    let console = server.bind().await.unwrap();
    let addr = console.local_addr().to_string();
    Fixture {
        app: app_addr,
        console,
        addr,
        registry,
        holds,
        dropped,
        metrics,
    }
}

/// Captures every panic's backtrace, as `RUST_BACKTRACE=1` would.
pub fn capture_backtraces() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            genro_errors::remember_panic_backtrace(&std::backtrace::Backtrace::force_capture());
            previous(info);
        }));
    });
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` (a whole HTTP/1.1 request) and reads until the server closes or a head with
/// an empty body (101) arrives.
pub async fn raw(addr: &str, request: &str) -> std::io::Result<Raw> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the server answers or closes within 5s")?;
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..read]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            // A whole response with a length, or a 101: nothing more to wait for.
            if head.starts_with("http/1.1 101")
                || length.is_some_and(|n| bytes.len() >= end + 4 + n)
            {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Raw {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A GET of the app, with extra header lines.
pub async fn fetch(addr: SocketAddr, path: &str, headers: &str) -> Raw {
    raw(
        &addr.to_string(),
        &format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: application/json\r\n{headers}connection: close\r\n\r\n"),
    )
    .await
    .unwrap()
}

/// A WebSocket handshake to the console with this `Host` and extra header lines.
pub fn handshake(host: &str, headers: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
    )
}
