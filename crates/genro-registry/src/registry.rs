use std::{
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use genro_envelope::RequestEnvelope;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::shards::{Key, Shards};

type Entries = Shards<Arc<RequestEnvelope>, Idle>;

/// How a drain waits for the registry to empty.
#[derive(Debug)]
struct Idle {
    notify: Notify,
    // How many `wait_idle` calls are waiting; the request path skips the notification when none.
    waiters: AtomicUsize,
}

/// The live set of in-flight requests.
///
/// Cheap to clone: every clone is the same registry. [`RegistryLayer`](crate::RegistryLayer)
/// adds each request and removes it when its response body has ended, whatever way it ends.
///
/// The set is split into shards, each a slab behind its own mutex, and one atomic counts the
/// total. A request locks one shard for a slab insert and a slab remove, and never waits on a
/// global lock; [`len`](Self::len) is one atomic load. [`stuck`](Self::stuck) and
/// [`snapshot`](Self::snapshot) visit one shard at a time, so a scan never blocks the request path
/// for longer than one shard takes to read.
#[derive(Clone)]
pub struct EnvelopeRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Entries,
}

impl EnvelopeRegistry {
    /// A registry with a shard count fitted to this machine (four per CPU, between 32 and 256).
    #[must_use]
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_shards((cpus * 4).clamp(32, 256))
    }

    /// A registry with `count` shards, rounded up to a power of two.
    #[must_use]
    pub fn with_shards(count: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: Shards::new(
                    count,
                    Idle {
                        notify: Notify::new(),
                        waiters: AtomicUsize::new(0),
                    },
                ),
            }),
        }
    }

    /// How many requests are in flight. One atomic load.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shards.len()
    }

    /// Whether no request is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The in-flight request with this internal id.
    #[must_use]
    pub fn get(&self, id: Uuid) -> Option<Arc<RequestEnvelope>> {
        let mut found = None;
        self.inner.shards.visit_shard_of(shard_hint(id), |e| {
            if e.internal_id() == id {
                found = Some(e.clone());
            }
        });
        found
    }

    /// The in-flight request whose internal id, short id or external id is `id`.
    ///
    /// For consoles and tools, where a person types the id they saw in a log line or an error
    /// body. A full internal id or a short id (its last eight hex digits, which also choose its
    /// shard) visits one shard; an external id visits every shard; anything that cannot be an id
    /// visits nothing, so junk input costs nothing.
    #[must_use]
    pub fn find(&self, id: &str) -> Option<Arc<RequestEnvelope>> {
        if let Ok(uuid) = Uuid::try_parse(id) {
            return self.get(uuid);
        }
        let mut found = None;
        if let Some(low) = short_id_bits(id) {
            self.inner.shards.visit_shard_of(low as usize, |e| {
                if found.is_none() && e.short_id() == id {
                    found = Some(e.clone());
                }
            });
            if found.is_some() {
                return found;
            }
        }
        if !genro_envelope::is_valid_external_id(id.as_bytes()) {
            return None;
        }
        self.inner.shards.visit(|e| {
            if found.is_none() && e.external_id() == Some(id) {
                found = Some(e.clone());
            }
        });
        found
    }

    /// Requests in flight for longer than `threshold`, oldest first.
    #[must_use]
    pub fn stuck(&self, threshold: Duration) -> Vec<Arc<RequestEnvelope>> {
        let now = tokio::time::Instant::now();
        let mut out = Vec::new();
        self.inner.shards.visit(|e| {
            if now.saturating_duration_since(e.started()) > threshold {
                out.push(e.clone());
            }
        });
        out.sort_by_key(|e| e.started());
        out
    }

    /// Every request in flight, oldest first. Not a point-in-time picture: shards are read one
    /// after another while requests keep coming and going.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Arc<RequestEnvelope>> {
        let mut out = Vec::with_capacity(self.len());
        self.inner.shards.visit(|e| out.push(e.clone()));
        out.sort_by_key(|e| e.started());
        out
    }

    /// Calls `f` on every in-flight envelope, one shard at a time, without collecting them.
    ///
    /// `f` runs while its shard is locked (for at most 1,024 slots at a time): keep it short, and
    /// never call back into the registry from it.
    pub fn for_each(&self, f: impl FnMut(&Arc<RequestEnvelope>)) {
        self.inner.shards.visit(f);
    }

    /// Registers `registry_in_flight` (requests in this registry, read at scrape time) in a
    /// prometheus-client registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(InFlightCollector(self.clone())));
    }

    /// How many shards the registry has.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.inner.shards.shard_count()
    }

    /// The slots the registry holds, used or not: its memory and the cost of a full scan scale
    /// with this. It grows with a spike of requests and shrinks again as the shards empty.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner.shards.capacity()
    }

    /// Calls `f` on every in-flight envelope of shard `index` (modulo [`shard_count`]), with only
    /// that shard locked. Lets a long scan yield between shards.
    ///
    /// [`shard_count`]: Self::shard_count
    pub fn for_each_in_shard(&self, index: usize, f: impl FnMut(&Arc<RequestEnvelope>)) {
        self.inner.shards.visit_shard_of(index, f);
    }

    /// Waits until no request is in flight, for at most `timeout` (`Duration::MAX` waits for as
    /// long as it takes). Returns whether the registry is empty. Wakes on the removal that
    /// empties it; it does not poll.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Announced before the count is read (both SeqCst): either the last removal sees this
        // waiter and notifies, or this waiter sees the count at zero.
        let idle = self.inner.shards.ext();
        idle.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&idle.waiters);
        // A timeout too large to add to now is no deadline at all.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let notified = idle.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a removal between the check and the wait still wakes us.
            notified.as_mut().enable();
            if self.is_empty() {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return self.is_empty();
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Adds `envelope` and returns the guard that removes it when dropped.
    ///
    /// [`RegistryLayer`](crate::RegistryLayer) does this for every request. Call it directly to
    /// track work that is not an HTTP request through the layer, such as a job started by a
    /// handler.
    #[must_use = "the envelope is removed as soon as the guard is dropped"]
    pub fn track(&self, envelope: Arc<RequestEnvelope>) -> InFlight {
        let hint = shard_hint(envelope.internal_id());
        let key = self.inner.shards.insert(hint, envelope.clone());
        InFlight {
            key: Some(key),
            envelope,
        }
    }
}

impl Default for EnvelopeRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EnvelopeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeRegistry")
            .field("len", &self.len())
            .field("shards", &self.inner.shards.shard_count())
            .finish()
    }
}

#[derive(Debug)]
struct InFlightCollector(EnvelopeRegistry);

impl prometheus_client::collector::Collector for InFlightCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(self.0.len() as i64);
        gauge.encode(encoder.encode_descriptor(
            "registry_in_flight",
            "Requests in the envelope registry: from arrival to the end of the response body",
            None,
            gauge.metric_type(),
        )?)
    }
}

fn shard_hint(id: Uuid) -> usize {
    // The low bits of a v7 id are random. Shard counts stay far below 2^32, so the low 32 bits,
    // which are the short id, choose the shard.
    id.as_u128() as usize
}

/// The low 32 bits of the id whose short id is `id`, when `id` is one (eight lowercase hex
/// digits).
fn short_id_bits(id: &str) -> Option<u32> {
    if id.len() == 8 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        u32::from_str_radix(id, 16).ok()
    } else {
        None
    }
}

/// Keeps one envelope in the registry; removes it exactly once, when dropped.
///
/// Dropping is the only way out, so the entry goes whether the work finished, failed, panicked
/// (the guard is dropped during unwinding) or was cancelled (its future was dropped).
pub struct InFlight {
    // The entry's shard, not the registry: a guard never touches the registry's own reference
    // count, which every request would otherwise contend on.
    key: Option<Key<Arc<RequestEnvelope>, Idle>>,
    envelope: Arc<RequestEnvelope>,
}

impl InFlight {
    /// The envelope this guard keeps in the registry.
    #[must_use]
    pub fn envelope(&self) -> &Arc<RequestEnvelope> {
        &self.envelope
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.envelope.set_phase(genro_envelope::Phase::Finished);
        let Some(key) = self.key.take() else { return };
        if let Some(removed) = key.remove() {
            let idle = removed.shard.ext();
            if removed.emptied && idle.waiters.load(Ordering::SeqCst) > 0 {
                idle.notify.notify_waiters();
            }
        }
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("id", &self.envelope.internal_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Uri};

    fn envelope() -> Arc<RequestEnvelope> {
        Arc::new(RequestEnvelope::new(Method::GET, Uri::from_static("/x")))
    }

    #[test]
    fn track_get_find_untrack() {
        let reg = EnvelopeRegistry::with_shards(4);
        let e = envelope();
        let guard = reg.track(e.clone());
        assert_eq!(reg.len(), 1);
        assert!(Arc::ptr_eq(&reg.get(e.internal_id()).unwrap(), &e));
        assert!(Arc::ptr_eq(&reg.find(&e.short_id()).unwrap(), &e));
        assert!(Arc::ptr_eq(&reg.find(&e.internal_id_string()).unwrap(), &e));
        assert!(reg.find("nope").is_none());
        drop(guard);
        assert!(reg.is_empty());
        assert!(reg.get(e.internal_id()).is_none());
        assert_eq!(e.phase(), genro_envelope::Phase::Finished);
    }

    #[test]
    fn in_flight_is_exported_at_scrape_time() {
        let reg = EnvelopeRegistry::new();
        let mut prom = prometheus_client::registry::Registry::default();
        reg.register_metrics(&mut prom);
        let _g = reg.track(envelope());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &prom).unwrap();
        assert!(text.contains("registry_in_flight 1"), "{text}");
    }

    #[test]
    fn visits_see_every_entry_of_a_shard_larger_than_one_chunk() {
        let reg = EnvelopeRegistry::with_shards(1);
        let guards: Vec<_> = (0..3_000).map(|_| reg.track(envelope())).collect();
        // Free some slots spread over the slab, across chunk boundaries.
        let (_kept, freed): (Vec<_>, Vec<_>) = guards
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 7 != 0);
        drop(freed);
        let expected = reg.len();
        assert_eq!(expected, 3_000 - 429);
        assert_eq!(reg.snapshot().len(), expected);
        let mut counted = 0;
        reg.for_each_in_shard(0, |_| counted += 1);
        assert_eq!(counted, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn stuck_and_snapshot_are_oldest_first() {
        let reg = EnvelopeRegistry::new();
        let old = envelope();
        let _g1 = reg.track(old.clone());
        tokio::time::advance(Duration::from_secs(10)).await;
        let young = envelope();
        let _g2 = reg.track(young.clone());
        let stuck = reg.stuck(Duration::from_secs(5));
        assert_eq!(stuck.len(), 1);
        assert!(Arc::ptr_eq(&stuck[0], &old));
        let all = reg.snapshot();
        assert!(Arc::ptr_eq(&all[0], &old) && Arc::ptr_eq(&all[1], &young));
    }

    #[test]
    fn find_looks_in_one_shard_for_a_short_id_and_nowhere_for_junk() {
        let reg = EnvelopeRegistry::with_shards(64);
        let e = Arc::new(
            RequestEnvelope::new(Method::GET, Uri::from_static("/x"))
                .with_external_id("order-7")
                .unwrap(),
        );
        let _g = reg.track(e.clone());
        let others: Vec<_> = (0..1_000).map(|_| reg.track(envelope())).collect();
        // The short id's shard is the one the entry lives in.
        let low = short_id_bits(&e.short_id()).unwrap() as usize;
        let mut in_that_shard = false;
        reg.for_each_in_shard(low, |x| in_that_shard |= Arc::ptr_eq(x, &e));
        assert!(in_that_shard);
        assert!(Arc::ptr_eq(&reg.find(&e.short_id()).unwrap(), &e));
        assert!(Arc::ptr_eq(&reg.find("order-7").unwrap(), &e));
        assert!(reg.find("not an id!").is_none());
        assert!(reg.find(&"x".repeat(10_000)).is_none());
        drop(others);
    }

    #[test]
    fn memory_is_given_back_after_a_spike() {
        let reg = EnvelopeRegistry::new();
        let idle = reg.capacity();
        let spike: Vec<_> = (0..100_000).map(|_| reg.track(envelope())).collect();
        let peak = reg.capacity();
        assert!(peak >= 100_000);
        drop(spike);
        assert!(reg.is_empty());
        let after = reg.capacity();
        assert!(
            after <= idle + reg.shard_count() * crate::shards::KEEP_SLOTS,
            "{after} slots kept after the spike (peak {peak})"
        );
        // The next requests still work.
        let g = reg.track(envelope());
        assert_eq!(reg.len(), 1);
        drop(g);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_with_no_limit_waits_for_as_long_as_it_takes() {
        let reg = EnvelopeRegistry::new();
        assert!(reg.wait_idle(Duration::MAX).await);
        let guard = reg.track(envelope());
        let waiter = tokio::spawn({
            let reg = reg.clone();
            async move { reg.wait_idle(Duration::MAX).await }
        });
        tokio::time::advance(Duration::from_secs(365 * 24 * 3600)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_wakes_on_the_last_removal_and_times_out_otherwise() {
        let reg = EnvelopeRegistry::new();
        assert!(reg.wait_idle(Duration::ZERO).await);
        let guard = reg.track(envelope());
        assert!(!reg.wait_idle(Duration::from_secs(1)).await);
        let waiter = tokio::spawn({
            let reg = reg.clone();
            async move { reg.wait_idle(Duration::from_secs(3600)).await }
        });
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        assert!(waiter.await.unwrap());
    }
}

#[cfg(test)]
mod memory {
    use super::*;
    use std::mem::size_of;

    /// An in-flight request's envelope plus its registry entry (the envelope's Arc block, its
    /// slab slot and its guard) take at most 512 bytes.
    #[test]
    fn envelope_plus_entry_within_512_bytes() {
        // The slab's slot type is private; this enum has its layout.
        #[allow(dead_code)]
        enum SlabEntry<T> {
            Vacant(usize),
            Occupied(T),
        }
        let arc_block = size_of::<RequestEnvelope>() + 2 * size_of::<usize>();
        let slot = size_of::<SlabEntry<Arc<RequestEnvelope>>>();
        let guard = size_of::<crate::tracking::Tracked>();
        let total = arc_block + slot + guard;
        assert!(
            total <= 512,
            "{arc_block} + {slot} + {guard} = {total} bytes"
        );
    }
}
