//! The envelope, the registry and the watchdog on a bare hyper-util server: no axum and no tonic
//! anywhere in the dependency tree, only hyper, hyper-util, tokio and the three genro crates.
//!
//! ```text
//! cargo run --example hyper_only --no-default-features --features genro-watchdog
//!                                                   # listens on 127.0.0.1:3000 (PORT to change)
//! curl -i localhost:3000/                           # x-request-id: <UUIDv7>; "hello, request <short id>"
//! curl -i -H 'x-request-id: order-42' localhost:3000/   # the valid id is echoed back
//! curl 'localhost:3000/slow?ms=4000' &              # a slow request...
//! curl localhost:3000/inflight                      # ...listed while it runs, with its phase and notes
//!                                                   # after 1 s the watchdog logs "request is slow",
//!                                                   # after 3 s "request is critically stuck"
//! ```
//!
//! Ctrl-C or SIGTERM stops accepting connections and waits up to 10 s for the requests in
//! flight (the registry's `wait_idle`), then says how many were left.
//!
//! Without axum the client address comes from [`ClientAddr`], which the accept loop puts in
//! each request's extensions.

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use genro_asgi::{
    ClientAddr, EnvelopeLayer, EnvelopeRegistry, RegistryLayer, RequestEnvelope, Watchdog,
    WatchdogConfig,
};
use http_body_util::Full;
use hyper::{body::Incoming, Request, Response, StatusCode};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tower::ServiceBuilder;

/// The application: three routes, matched by hand.
async fn app(
    registry: EnvelopeRegistry,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let envelope = RequestEnvelope::from_request(&req).expect("the envelope layer is installed");
    let body = match req.uri().path() {
        "/" => format!("hello, request {}\n", envelope.short_id()),
        "/slow" => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(4000);
            envelope.annotate("stage", "sleeping");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            "done\n".to_owned()
        }
        "/inflight" => inflight(&registry),
        _ => {
            let mut res = Response::new(Full::from("not found\n"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return Ok(res);
        }
    };
    Ok(Response::new(Full::from(body)))
}

/// One line per request in flight: short id, phase, age, method, path, client, annotations.
fn inflight(registry: &EnvelopeRegistry) -> String {
    use std::fmt::Write;
    let mut out = format!("{} in flight\n", registry.len());
    for e in registry.snapshot() {
        let client = e.client().map_or_else(String::new, |c| c.to_string());
        let _ = writeln!(
            out,
            "{}  {:<9} {:>8.1?}  {} {}  {client}  {:?}",
            e.short_id(),
            e.phase(),
            e.age(),
            e.method(),
            e.path(),
            e.annotations(),
        );
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The log on stderr, coloured only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let registry = EnvelopeRegistry::new();
    let watchdog = Watchdog::new(
        registry.clone(),
        WatchdogConfig {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
            critical: Duration::from_secs(3),
        },
    )
    .spawn()?;

    let service = ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(RegistryLayer::new(registry.clone()))
        .service_fn({
            let registry = registry.clone();
            move |req| app(registry.clone(), req)
        });

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // On stdout, whatever the log level: scripts (and the example's test) read the port here.
    println!("listening on http://{}", listener.local_addr()?);

    let builder = auto::Builder::new(TokioExecutor::new());
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection reset before it was accepted: skip it.
                Err(e) => { tracing::debug!("accept: {e}"); continue; }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(
            ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .service(service.clone()),
        );
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }

    // Stop accepting, then wait for what is in flight: the registry knows when the last
    // response body has ended.
    drop(listener);
    tracing::info!(in_flight = registry.len(), "stopping: draining");
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

/// Ctrl-C, or SIGTERM where there is one.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
