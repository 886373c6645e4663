//! Registry insert + remove: one thread, and two threads on the same registry.

use std::{hint::black_box, sync::Arc};

use criterion::{criterion_group, criterion_main, Criterion};
use genro_asgi::{EnvelopeRegistry, RequestEnvelope};
use http::{Method, Uri};

fn envelope() -> Arc<RequestEnvelope> {
    Arc::new(RequestEnvelope::new(
        Method::GET,
        Uri::from_static("/bench"),
    ))
}

fn insert_remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry");
    let registry = EnvelopeRegistry::new();
    // Keep some other requests in flight, as on a busy server.
    let _background: Vec<_> = (0..1_000).map(|_| registry.track(envelope())).collect();

    // The envelope is made once per thread and its Arc cloned, so only tracking is timed.
    group.bench_function("track_untrack/1_thread", |b| {
        let e = envelope();
        b.iter(|| drop(black_box(registry.track(e.clone()))));
    });

    group.bench_function("track_untrack/2_threads", |b| {
        b.iter_custom(|iters| {
            let reg = registry.clone();
            let other = std::thread::spawn(move || {
                let e = envelope();
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    drop(black_box(reg.track(e.clone())));
                }
                start.elapsed()
            });
            let e = envelope();
            let start = std::time::Instant::now();
            for _ in 0..iters {
                drop(black_box(registry.track(e.clone())));
            }
            let mine = start.elapsed();
            // Time per operation pair as seen by each thread while both run.
            (mine + other.join().expect("bench thread")) / 2
        });
    });

    group.bench_function("len", |b| b.iter(|| black_box(registry.len())));
    group.finish();
}

criterion_group!(benches, insert_remove);
criterion_main!(benches);
