//! The genro stack on a tonic server: every gRPC call gets its envelope and `x-request-id`, stays
//! in the registry until its response stream ends, is measured, and a panic comes back as a gRPC
//! status carrying the error id. Readiness (tonic-health) follows the drain.
//!
//! ```text
//! cargo run --example tonic_layers --features tonic
//!                                  # gRPC, and HTTP/1.1 for the two pages, on 127.0.0.1:50051 (PORT to change)
//! curl localhost:50051/inflight    # the calls in flight: an open Watch stream is listed, phase streaming
//! curl localhost:50051/metrics     # Prometheus text: http_requests_total{route="/grpc.health.v1.Health/Check",...}
//! ```
//!
//! The gRPC calls, from any gRPC client (the example's test, `tests/examples.rs`, makes each of
//! them with tonic's client):
//!
//! - `grpc.health.v1.Health/Check {service: ""}`: `SERVING`, with `x-request-id` in the response
//!   metadata (a valid id the client sent is echoed; otherwise the server's UUIDv7);
//! - `grpc.health.v1.Health/Watch {service: ""}`: a stream, listed on `/inflight` until the client
//!   drops it;
//! - `genro.example.Jobs/Run {service: "crash"}`: the handler panics; the client gets `INTERNAL`
//!   with "… error id 1a2b3c4d" in the message, the `x-error-id` metadata, and the id again in a
//!   `google.rpc.RequestInfo` detail (`tonic_types::StatusExt::get_details_request_info`); the log
//!   has the panic under the same id. Any other job name answers `SERVING`;
//! - Ctrl-C or SIGTERM: `Check` and open `Watch` streams answer `NOT_SERVING` at once, while the
//!   server keeps serving for `DRAIN_DELAY_MS` (2000) so that load balancers stop sending; then
//!   the watches end, the server stops accepting, and waits up to 10 s for the calls in flight.
//!
//! `genro.example.Jobs` is written by hand (what tonic-build generates, cut down to one method)
//! and borrows tonic-health's messages, so the example needs no `.proto` file and no protoc.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request},
    routing::get,
};
use genro_asgi::{EnvelopeRegistry, GenroLayer, MetricsCollector, RequestEnvelope};
use tonic::{server::NamedService, service::Routes, Status};
use tonic_health::{
    pb::{HealthCheckRequest, HealthCheckResponse},
    ServingStatus,
};

/// The example's own gRPC service, `genro.example.Jobs`, with one unary method, `Run`.
#[derive(Clone, Debug)]
struct Jobs;

impl NamedService for Jobs {
    const NAME: &'static str = "genro.example.Jobs";
}

/// The handler of `Run`: the job named `crash` has a bug.
async fn run(
    req: tonic::Request<HealthCheckRequest>,
) -> Result<tonic::Response<HealthCheckResponse>, Status> {
    let job = req.into_inner().service;
    assert!(job != "crash", "job {job:?} hit a bug");
    Ok(tonic::Response::new(HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }))
}

impl tower::Service<http::Request<tonic::body::Body>> for Jobs {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() != "/genro.example.Jobs/Run" {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(tower::service_fn(run), req).await)
        })
    }
}

/// One line per call in flight: short id, phase, age, method, path.
async fn inflight(registry: EnvelopeRegistry) -> String {
    let mut out = format!("{} in flight\n", registry.len());
    for e in registry.snapshot() {
        out.push_str(&format!(
            "{}  {:<9} {:>8.1?}  {} {}\n",
            e.short_id(),
            e.phase(),
            e.age(),
            e.method(),
            e.path(),
        ));
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
    let collector = MetricsCollector::new();
    registry.register_metrics(&mut collector.registry());

    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<Jobs>().await;

    // The two pages: the stack is outside the routing (it wraps tonic's server), so each page
    // names its route on the envelope for the metrics. gRPC methods need nothing: the metrics
    // label a method once its response proves the server implements it.
    let pages = axum::Router::new()
        .route(
            "/inflight",
            get({
                let registry = registry.clone();
                move || inflight(registry.clone())
            }),
        )
        .route_service("/metrics", collector.endpoint())
        .layer(axum::middleware::map_request(|req: Request| async move {
            if let (Some(envelope), Some(route)) = (
                RequestEnvelope::from_request(&req),
                req.extensions().get::<MatchedPath>(),
            ) {
                envelope.set_route(route.as_str());
            }
            req
        }));
    // The gRPC services and the pages share one port and one stack.
    let router = Routes::new(health)
        .add_service(Jobs)
        .into_axum_router()
        .merge(pages);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(50051);
    let delay = Duration::from_millis(
        std::env::var("DRAIN_DELAY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(2000),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // On stdout, whatever the log level: scripts (and the example's test) read the port here.
    println!("listening on http://{}", listener.local_addr()?);

    let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(GenroLayer::new(&registry, &collector))
            .add_routes(Routes::from(router))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = accepting_stopped.await;
                },
            ),
    );

    stop_signal().await;
    // Not ready first, while still serving: probes and watchers see NOT_SERVING, and the
    // balancer stops sending before the port closes.
    reporter.set_not_serving::<Jobs>().await;
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    tracing::info!("not serving: draining in {delay:?}");
    tokio::time::sleep(delay).await;
    // Ends the open Watch streams (their sender is dropped), then closes the port.
    reporter.clear_service_status("").await;
    reporter.clear_service_status(Jobs::NAME).await;
    let _ = stop_accepting.send(());
    if registry.wait_idle(Duration::from_secs(10)).await {
        tracing::info!("drained");
    } else {
        for e in registry.snapshot() {
            tracing::warn!(id = %e.short_id(), path = e.path(), age = ?e.age(), "still in flight at exit");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
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
