//! How long a trace takes with 1,000 requests in flight, each parked in an axum handler behind
//! `GenroLayer`, on a 2-worker runtime:
//! - `taskdump/waiting_on_1_of_1000`: `TaskDumper::waiting_on` for one of them: waking its task,
//!   one traced poll, and resolving its frames;
//! - `taskdump/waiting_on_32_of_1000`: a watchdog's batch, the most one call traces.
//!
//! (tokio's own `Handle::dump` of the same runtime never returns: its leader worker spins in
//! `steal_all`, tokio-rs/tokio#7478. That is why a request is traced on its own.)
//!
//! Needs a build with tracing:
//! `RUSTFLAGS="--cfg tokio_unstable" cargo bench --features taskdump --bench taskdump`.
//! Without it, it says so and measures nothing.

use criterion::{criterion_group, criterion_main, Criterion};

#[cfg(all(tokio_unstable, feature = "taskdump"))]
fn traces(c: &mut Criterion) {
    use std::{hint::black_box, sync::Arc, time::Instant};

    use axum::{routing::get, Router};
    use genro_asgi::{
        taskdump::{DumpLimits, TaskDumper},
        EnvelopeRegistry, GenroLayer, MetricsCollector,
    };
    use tokio::sync::Notify;
    use tower::ServiceExt;

    const IN_FLIGHT: usize = 1_000;

    #[inline(never)]
    async fn parked(never: Arc<Notify>) {
        never.notified().await;
    }

    /// 1,000 requests parked in a handler, on `rt`; returns the registry that holds them.
    fn park_requests(rt: &tokio::runtime::Runtime, never: &Arc<Notify>) -> EnvelopeRegistry {
        let registry = EnvelopeRegistry::new();
        let never = never.clone();
        let app = Router::new()
            .route(
                "/park",
                get(move || {
                    let never = never.clone();
                    async move {
                        parked(never).await;
                        "never"
                    }
                }),
            )
            .layer(GenroLayer::new(&registry, &MetricsCollector::new()));
        rt.block_on(async {
            for _ in 0..IN_FLIGHT {
                let app = app.clone();
                let req = http::Request::get("/park")
                    .body(axum::body::Body::empty())
                    .unwrap();
                tokio::spawn(app.oneshot(req));
            }
            while registry.len() < IN_FLIGHT {
                tokio::task::yield_now().await;
            }
        });
        registry
    }

    let never = Arc::new(Notify::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = park_requests(&rt, &never);
    let in_flight = registry.snapshot();
    let dumper = TaskDumper::new(DumpLimits::default().min_interval(std::time::Duration::ZERO));
    // The first resolution reads the binary's debug info; measure the steady state after it.
    let first = Instant::now();
    let trace = rt
        .block_on(dumper.waiting_on(&in_flight[0]))
        .expect("traced");
    assert!(trace.text().contains("parked"), "{trace}");
    println!("first trace (reads the debug info): {:?}", first.elapsed());
    let mut group = c.benchmark_group("taskdump");
    group.sample_size(20);
    group.bench_function("waiting_on_1_of_1000", |b| {
        b.iter(|| black_box(rt.block_on(dumper.waiting_on(&in_flight[0])).unwrap()))
    });
    group.bench_function("waiting_on_32_of_1000", |b| {
        b.iter(|| {
            let traces = rt.block_on(dumper.waiting_on_all(in_flight[..32].iter().map(|e| &**e)));
            assert!(traces.iter().all(Result::is_ok));
            black_box(traces)
        })
    });
    group.finish();
    never.notify_waiters();
}

#[cfg(not(all(tokio_unstable, feature = "taskdump")))]
fn traces(_: &mut Criterion) {
    println!(
        "taskdump: tracing is not in this build; run RUSTFLAGS=\"--cfg tokio_unstable\" cargo bench \
         --features taskdump --bench taskdump"
    );
}

criterion_group!(benches, traces);
criterion_main!(benches);
