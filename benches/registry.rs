//! Registry insert + remove: one thread, and two threads on the same registry.

use std::{hint::black_box, sync::Arc};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
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

    group.bench_function("track_untrack/1_thread", |b| {
        b.iter_batched(
            envelope,
            |e| drop(black_box(registry.track(e))),
            BatchSize::SmallInput,
        );
    });

    group.bench_function("track_untrack/2_threads", |b| {
        b.iter_custom(|iters| {
            let reg = registry.clone();
            let other = std::thread::spawn(move || {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    drop(black_box(reg.track(envelope())));
                }
                start.elapsed()
            });
            let start = std::time::Instant::now();
            for _ in 0..iters {
                drop(black_box(registry.track(envelope())));
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
