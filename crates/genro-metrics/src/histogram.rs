//! A histogram the request path can update without a lock.
//!
//! prometheus-client's `Histogram` takes a mutex on every observation. The request path observes
//! two histograms per request, so this crate keeps its own: one atomic counter per bucket and an
//! atomic sum, which costs less than half of prometheus-client's per observation
//! (`benches/callgrind.sh`, `histogram-*` rows). prometheus-client still does everything else (the registry, the families and both
//! text formats) through its public `EncodeMetric` trait.
//!
//! A scrape reads the buckets one by one while requests keep landing, so the `count` and `sum`
//! of one scrape can differ by the requests that landed during it. The count is computed from
//! the buckets it reports, so `_count` always equals the `+Inf` bucket, as Prometheus requires.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};

/// Upper bounds of `http_request_duration_seconds`: the Prometheus client libraries' defaults
/// (5 ms to 10 s), plus 30 s and 60 s for streaming responses.
pub(crate) const DURATION_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Upper bounds of `http_response_size_bytes`: 64 B to 64 MiB, by powers of four.
pub(crate) const SIZE_BOUNDS: &[f64] = &[
    64.0,
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// A cumulative histogram with fixed bounds, updated with atomics: the type of the request
/// histograms. Clones share the counts. It is a prometheus-client metric (`EncodeMetric`), so it
/// can be registered like any other; the instruction harness measures it against
/// prometheus-client's own `Histogram`.
#[derive(Clone)]
pub struct Histogram(Arc<Inner>);

struct Inner {
    bounds: &'static [f64],
    /// One counter per bound, and a last one for values above every bound (`+Inf`).
    counts: Box<[AtomicU64]>,
    /// The sum of the observed values, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending; a `+Inf` bucket is added).
    #[must_use]
    pub fn new(bounds: &'static [f64]) -> Self {
        Self(Arc::new(Inner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }))
    }

    pub(crate) fn duration() -> Self {
        Self::new(DURATION_BOUNDS)
    }

    pub(crate) fn size() -> Self {
        Self::new(SIZE_BOUNDS)
    }

    /// Records one value.
    #[inline]
    pub fn observe(&self, value: f64) {
        let inner = &*self.0;
        // Most values land in the first buckets, so a linear scan beats a binary search here.
        let bucket = inner
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(inner.bounds.len());
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // Uncontended, this loop runs once.
        let _ = inner
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some((f64::from_bits(sum) + value).to_bits())
            });
    }

    /// The sum, the count and the non-cumulative count of each bucket (the last bound is
    /// infinite, which both text encoders print as `+Inf`).
    pub(crate) fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let inner = &*self.0;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (
            f64::from_bits(inner.sum.load(Ordering::Relaxed)),
            count,
            buckets,
        )
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sum, count, _) = self.get();
        f.debug_struct("Histogram")
            .field("count", &count)
            .field("sum", &sum)
            .finish_non_exhaustive()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 2.5, 1e300] {
            h.observe(v);
        }
        let (sum, count, buckets) = h.get();
        assert_eq!(count, 6);
        assert_eq!(buckets, vec![(1.0, 2), (2.0, 2), (f64::INFINITY, 2)]);
        assert!((sum - (7.5 + 1e300)).abs() <= 1e285);
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = Histogram::duration();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        h.observe(0.001);
                    }
                });
            }
        });
        let (sum, count, buckets) = h.get();
        assert_eq!(count, 40_000);
        assert_eq!(buckets[0].1, 40_000);
        assert!((sum - 40.0).abs() < 1e-6, "sum {sum}");
    }

    #[test]
    fn both_text_formats_accept_it() {
        let mut registry = prometheus_client::registry::Registry::default();
        let h = Histogram::new(&[0.1]);
        h.observe(0.05);
        h.observe(3.0);
        registry.register("t", "test", h);
        let mut openmetrics = String::new();
        prometheus_client::encoding::text::encode(&mut openmetrics, &registry).unwrap();
        let mut prometheus = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut prometheus, &registry).unwrap();
        for text in [openmetrics, prometheus] {
            assert!(text.contains("t_bucket{le=\"0.1\"} 1\n"), "{text}");
            assert!(text.contains("t_bucket{le=\"+Inf\"} 2\n"), "{text}");
            assert!(text.contains("t_count 2\n"), "{text}");
            assert!(text.contains("t_sum 3.05\n"), "{text}");
        }
    }
}
