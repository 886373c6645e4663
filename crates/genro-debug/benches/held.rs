//! The memory a held request takes: N requests are held on error at once, and the live heap
//! (dhat's count of the bytes allocated and not yet freed) is compared with the heap before they
//! came. The same N requests merely in flight (a handler that waits) are the reference: the
//! difference is what holding adds. Run with `cargo bench -p genro-debug --bench held`.

use std::time::Duration;

use axum::{body::Body, routing::get, Router};
use genro_debug::Holds;
use genro_envelope::{CancelLayer, EnvelopeLayer};
use genro_errors::ErrorLayer;
use genro_metrics::MetricsCollector;
use genro_registry::EnvelopeRegistry;
use genro_stack::GenroLayer;
use http::Request;
use tower::{Service, ServiceBuilder, ServiceExt};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: usize = 1000;

fn live() -> u64 {
    dhat::HeapStats::get().curr_bytes as u64
}

async fn measure(path: &'static str) -> u64 {
    let registry = EnvelopeRegistry::new();
    let holds = Holds::new(Duration::from_secs(600), N);
    let app: Router = Router::new()
        .route(
            "/panic",
            get(|| async {
                if N > 0 {
                    panic!("held");
                }
                "unreachable"
            }),
        )
        .route("/wait", get(std::future::pending::<&'static str>))
        .layer(
            ServiceBuilder::new()
                .layer(
                    GenroLayer::new(&registry, &MetricsCollector::new())
                        .envelope(EnvelopeLayer::new().keep_headers(true))
                        .errors(holds.install(ErrorLayer::new())),
                )
                .layer(CancelLayer::new()),
        );
    let mut svc = app.with_state::<()>(());
    // One request first, so that what is made once (statics, the runtime's queues) is not
    // counted.
    let warm = tokio::spawn(
        ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(request("/wait")),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = live();
    let mut tasks = Vec::with_capacity(N);
    for _ in 0..N {
        let fut = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(request(path));
        tasks.push(tokio::spawn(fut));
    }
    while registry.len() < N + 1 || (path == "/panic" && holds.len() < N) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = live();
    holds.release_all();
    for task in tasks {
        task.abort();
    }
    warm.abort();
    during.saturating_sub(before) / N as u64
}

fn request(path: &'static str) -> Request<Body> {
    Request::get(path)
        .header(http::header::HOST, "127.0.0.1:8000")
        .header(http::header::USER_AGENT, "curl/7.88.1")
        .header(http::header::ACCEPT, "*/*")
        .body(Body::empty())
        .unwrap()
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    std::panic::set_hook(Box::new(|_| {}));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let waiting = rt.block_on(measure("/wait"));
    let held = rt.block_on(measure("/panic"));
    println!("live heap per request, {N} at once (dhat):");
    println!("  in flight, waiting in its handler: {waiting:>6} bytes");
    println!("  held on error for a debugger:      {held:>6} bytes");
}
