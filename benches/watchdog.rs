//! One watchdog scan over 100,000 in-flight envelopes, and the longest time any registry shard
//! stays locked during it (budget: scan under 20 ms, no lock held over 1 ms).

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion};
use genro_asgi::{EnvelopeRegistry, RequestEnvelope, Watchdog, WatchdogConfig};
use http::{Method, Uri};

const IN_FLIGHT: usize = 100_000;

fn scan(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let registry = EnvelopeRegistry::new();
    let guards: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            registry.track(Arc::new(RequestEnvelope::new(
                Method::GET,
                Uri::from_static("/r"),
            )))
        })
        .collect();
    // Thresholds under which a hundredth of the requests count as stuck: the scan must still
    // compare every age, and clone and report only the few.
    let config = WatchdogConfig {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(60),
        critical: Duration::from_secs(300),
    };

    // The longest single shard visit with the scan's own work under the lock.
    let now = tokio::time::Instant::now();
    let mut longest = Duration::ZERO;
    for shard in 0..registry.shard_count() {
        let start = std::time::Instant::now();
        let mut stuck = Vec::new();
        registry.for_each_in_shard(shard, |e| {
            if now.saturating_duration_since(e.started()) > config.timeout {
                stuck.push(e.clone());
            }
        });
        longest = longest.max(start.elapsed());
        black_box(stuck);
    }
    println!(
        "longest shard lock over {IN_FLIGHT} envelopes in {} shards: {longest:?}",
        registry.shard_count()
    );

    let mut watchdog = Watchdog::new(registry, config);
    c.bench_function("watchdog/scan_100k_in_flight", |b| {
        b.iter(|| black_box(watchdog.scan()))
    });
    drop(guards);
}

criterion_group!(benches, scan);
criterion_main!(benches);
