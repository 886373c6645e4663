//! The sharded slab behind the registry.
//!
//! Kept free of the envelope type and of tokio so that the concurrency model test
//! (`tests/loom.rs`) can compile this same file against loom's primitives.

use slab::Slab;

use crate::sync::{AtomicUsize, Mutex, Ordering, PoisonError};

/// The most slots a visit reads before it releases the shard lock and takes it again.
pub(crate) const VISIT_CHUNK: usize = 1024;

/// One cache line per shard, so that two cores working on two shards do not share a line.
#[derive(Debug)]
#[repr(align(64))]
struct Padded<T>(T);

/// Where a value sits: its shard and its slot. Returned by insert, given back to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    shard: u32,
    slot: u32,
}

/// A set of slabs, each behind its own mutex, with one atomic count over all of them.
///
/// Insert and remove lock one shard for a few instructions; `len` reads one atomic; visits lock
/// one shard at a time. No operation ever holds two locks.
#[derive(Debug)]
pub(crate) struct Shards<T> {
    shards: Box<[Padded<Mutex<Slab<T>>>]>,
    len: Padded<AtomicUsize>,
    mask: usize,
}

impl<T> Shards<T> {
    /// `count` is rounded up to a power of two, at least 1.
    pub(crate) fn new(count: usize) -> Self {
        let count = count.max(1).next_power_of_two();
        Self {
            shards: (0..count)
                .map(|_| Padded(Mutex::new(Slab::new())))
                .collect(),
            len: Padded(AtomicUsize::new(0)),
            mask: count - 1,
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn lock(&self, shard: usize) -> crate::sync::MutexGuard<'_, Slab<T>> {
        // Nothing panics while a shard is locked, but if something ever did, the slab is still
        // consistent (slab operations do not unwind half-way): keep going rather than poison
        // every later request.
        self.shards[shard]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Inserts `value` in the shard chosen by `hint` (any well-mixed number, such as random id
    /// bits).
    pub(crate) fn insert(&self, hint: usize, value: T) -> Key {
        // Count first: `len` may briefly over-count, never under-count, so a drain that sees 0
        // really has nothing left.
        self.len.0.fetch_add(1, Ordering::AcqRel);
        let shard = hint & self.mask;
        let slot = self.lock(shard).insert(value);
        Key {
            shard: shard as u32,
            slot: u32::try_from(slot).expect("fewer than 2^32 values in one shard"),
        }
    }

    /// Removes the value at `key`. The flag is true when this removal emptied the whole set.
    pub(crate) fn remove(&self, key: Key) -> Option<(T, bool)> {
        let value = self
            .lock(key.shard as usize)
            .try_remove(key.slot as usize)?;
        let before = self.len.0.fetch_sub(1, Ordering::SeqCst);
        Some((value, before == 1))
    }

    pub(crate) fn len(&self) -> usize {
        self.len.0.load(Ordering::SeqCst)
    }

    /// Calls `f` on every value of the shard `hint` selects.
    ///
    /// The shard is locked for at most [`VISIT_CHUNK`] slots at a time, so a visit of a large
    /// shard never holds up inserts and removes for long. Slab slots never move, so resuming at
    /// the next slot index after re-locking sees every value that stayed in place; values added
    /// or removed meanwhile may or may not be seen.
    pub(crate) fn visit_shard_of(&self, hint: usize, mut f: impl FnMut(&T)) {
        let shard = hint & self.mask;
        let mut start = 0;
        loop {
            let slab = self.lock(shard);
            let end = slab.capacity().min(start + VISIT_CHUNK);
            for slot in start..end {
                if let Some(value) = slab.get(slot) {
                    f(value);
                }
            }
            if end >= slab.capacity() {
                return;
            }
            start = end;
        }
    }

    /// Calls `f` on every value, one shard (and one chunk of it) at a time.
    pub(crate) fn visit(&self, mut f: impl FnMut(&T)) {
        for shard in 0..self.shards.len() {
            self.visit_shard_of(shard, &mut f);
        }
    }
}
