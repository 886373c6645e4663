//! How long one task dump takes with 1,000 requests in flight, each parked in an axum handler
//! behind `GenroLayer`:
//! - `taskdump/dump_1000_in_flight`: tokio's `Handle::dump` on a 2-worker runtime, the time the
//!   runtime is paused;
//! - `taskdump/waiting_on_1_of_1000`: `TaskDumper::waiting_on` for one of them, on a
//!   current-thread runtime: the dump plus resolving that request's frames (a multi-thread
//!   runtime adds the 300 ms check for a blocked worker, a wait that pauses nothing).
//!
//! Needs a build with task dumps:
//! `RUSTFLAGS="--cfg tokio_unstable" cargo bench --features taskdump --bench taskdump`.
//! Without it, it says so and measures nothing.

use criterion::{criterion_group, criterion_main, Criterion};

#[cfg(all(tokio_unstable, feature = "taskdump"))]
fn dumps(c: &mut Criterion) {
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
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _registry = park_requests(&multi, &never);
    let mut group = c.benchmark_group("taskdump");
    group.sample_size(20);
    group.bench_function("dump_1000_in_flight", |b| {
        b.iter_custom(|iters| {
            multi.block_on(async {
                let handle = tokio::runtime::Handle::current();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(handle.dump().await);
                }
                start.elapsed()
            })
        })
    });

    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = park_requests(&single, &never);
    let one = registry.snapshot().pop().unwrap();
    let dumper = TaskDumper::new(DumpLimits::default().min_interval(std::time::Duration::ZERO));
    // The first resolution reads the binary's debug info; measure the steady state after it.
    let first = Instant::now();
    let trace = single.block_on(dumper.waiting_on(&one)).expect("traced");
    assert!(trace.text().contains("parked"), "{trace}");
    println!("first trace (reads the debug info): {:?}", first.elapsed());
    group.bench_function("waiting_on_1_of_1000", |b| {
        b.iter(|| black_box(single.block_on(dumper.waiting_on(&one)).unwrap()))
    });
    group.finish();
    never.notify_waiters();
}

#[cfg(not(all(tokio_unstable, feature = "taskdump")))]
fn dumps(_: &mut Criterion) {
    println!(
        "taskdump: not in this build; run RUSTFLAGS=\"--cfg tokio_unstable\" cargo bench \
         --features taskdump --bench taskdump"
    );
}

criterion_group!(benches, dumps);
criterion_main!(benches);
