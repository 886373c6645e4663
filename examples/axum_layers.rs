//! An axum app with every genro-asgi layer: envelope, registry, metrics and errors, plus the
//! watchdog and `/metrics`.
//!
//! ```text
//! cargo run --example axum_layers            # listens on 127.0.0.1:3000 (PORT to change)
//! curl -i localhost:3000/                    # x-request-id: <UUIDv7>
//! curl -i -H 'x-request-id: order-42' localhost:3000/   # echoed back
//! curl localhost:3000/slow &                 # a 10 s request...
//! curl localhost:3000/inflight               # ...listed while it runs
//! curl -i localhost:3000/fail                # problem+json with an error id (also in the log)
//! curl localhost:3000/metrics                # Prometheus text
//! ```
//!
//! Ctrl-C stops accepting connections and waits up to 10 s for in-flight requests to finish.

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::{ws::WebSocketUpgrade, State},
    response::Response,
    routing::{any, get},
    Extension, Router,
};
use genro_asgi::{
    Envelope, EnvelopeLayer, EnvelopeRegistry, Error, ErrorLayer, InFlightToken, MetricsCollector,
    MetricsLayer, RegistryLayer, Watchdog, WatchdogConfig,
};
use tower::ServiceBuilder;

async fn hello(envelope: Envelope) -> String {
    envelope.annotate("greeting", "hello");
    format!("hello, request {}\n", envelope.short_id())
}

async fn slow(envelope: Envelope) -> &'static str {
    envelope.annotate("stage", "sleeping");
    tokio::time::sleep(Duration::from_secs(10)).await;
    "done\n"
}

/// Streams one line a second for five seconds: in flight, in the streaming phase, until the end.
async fn stream() -> Body {
    let lines = futures_util::stream::unfold(0, |n| async move {
        if n == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some((
            Ok::<_, std::convert::Infallible>(format!("line {n}\n")),
            n + 1,
        ))
    });
    Body::from_stream(lines)
}

async fn fail() -> Result<String, Error> {
    Err(Error::msg("the database is on fire"))
}

async fn inflight(State(registry): State<EnvelopeRegistry>) -> String {
    let mut out = format!("{} in flight\n", registry.len());
    for e in registry.snapshot() {
        out.push_str(&format!(
            "{}  {:<9} {:>8.1?}  {} {}  {:?}\n",
            e.short_id(),
            e.phase(),
            e.age(),
            e.method(),
            e.route().unwrap_or(e.path()),
            e.annotations(),
        ));
    }
    out
}

async fn echo(upgrade: WebSocketUpgrade, Extension(token): Extension<InFlightToken>) -> Response {
    upgrade.on_upgrade(move |mut socket| async move {
        let _tracked = token;
        while let Some(Ok(msg)) = socket.recv().await {
            if socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let registry = EnvelopeRegistry::new();
    let metrics = MetricsCollector::new();
    metrics.register_process_metrics();
    registry.register_metrics(&mut metrics.registry());
    let envelope = EnvelopeLayer::new();
    envelope.register_metrics(&mut metrics.registry());
    let errors = ErrorLayer::new();
    errors.register_metrics(&mut metrics.registry());
    let watchdog = Watchdog::new(
        registry.clone(),
        WatchdogConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            critical: Duration::from_secs(8),
        },
    );
    watchdog.register_metrics(&mut metrics.registry());
    let watchdog = watchdog.spawn()?;

    let app = Router::new()
        .route("/", get(hello))
        .route("/slow", get(slow))
        .route("/stream", get(stream))
        .route("/ws", any(echo))
        .route("/fail", get(fail))
        .route("/inflight", get(inflight))
        .with_state(registry.clone())
        .layer(
            ServiceBuilder::new()
                .layer(envelope)
                .layer(RegistryLayer::new(registry.clone()))
                .layer(MetricsLayer::new(&metrics))
                .layer(errors),
        )
        .route_service("/metrics", metrics.endpoint());

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;

    watchdog.stop().await;
    if registry.wait_idle(Duration::from_secs(10)).await {
        tracing::info!("drained");
    } else {
        for e in registry.snapshot() {
            tracing::warn!(id = %e.short_id(), path = e.path(), age = ?e.age(), "still in flight at exit");
        }
    }
    Ok(())
}
