//! The sharded slab behind the registry.
//!
//! Kept free of the envelope type and of tokio so that the concurrency model test
//! (`tests/loom.rs`) can compile this same file against loom's primitives.

use slab::Slab;

use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, PoisonError};

/// The most slots a visit reads before it releases the shard lock and takes it again.
pub(crate) const VISIT_CHUNK: usize = 1024;

/// A shard that empties while holding more slots than this gives its memory back: after a
/// spike, memory and scan time return to what the load needs. Below it, an emptied shard keeps
/// its slots, so a steady load does not allocate.
pub(crate) const KEEP_SLOTS: usize = 256;

/// What all shards share: the total count, and the owner's extra state `S` (the registry keeps
/// its idle notification there).
#[derive(Debug)]
pub(crate) struct Common<S> {
    len: AtomicUsize,
    pub(crate) ext: S,
}

/// One slab behind its own mutex, aligned to its own cache line so that two cores working on two
/// shards do not share a line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Shard<T, S> {
    slab: Mutex<Slab<T>>,
    common: Arc<Common<S>>,
}

impl<T, S> Shard<T, S> {
    fn lock(&self) -> crate::sync::MutexGuard<'_, Slab<T>> {
        // Nothing panics while a shard is locked, but if something ever did, the slab is still
        // consistent (slab operations do not unwind half-way): keep going rather than poison
        // every later request.
        self.slab.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a value sits. Holding the shard itself (not the whole set) means that adding and
/// removing a value touch only that shard's reference count, plus the one shared total.
#[derive(Debug)]
pub(crate) struct Key<T, S> {
    shard: Arc<Shard<T, S>>,
    slot: u32,
}

/// What a removal gives back.
#[derive(Debug)]
pub(crate) struct Removed<T, S> {
    /// The registry only drops it; the model test reads it.
    #[allow(dead_code)]
    pub(crate) value: T,
    /// This removal emptied the whole set.
    pub(crate) emptied: bool,
    pub(crate) shard: Arc<Shard<T, S>>,
}

impl<T, S> Key<T, S> {
    /// Removes the value. Consuming the key makes a second removal of the same slot impossible.
    pub(crate) fn remove(self) -> Option<Removed<T, S>> {
        let value = {
            let mut slab = self.shard.lock();
            let value = slab.try_remove(self.slot as usize)?;
            // No key of this shard is outstanding when it is empty, so its slab can be replaced.
            if slab.is_empty() && slab.capacity() > KEEP_SLOTS {
                *slab = Slab::new();
            }
            value
        };
        let before = self.shard.common.len.fetch_sub(1, Ordering::SeqCst);
        Some(Removed {
            value,
            emptied: before == 1,
            shard: self.shard,
        })
    }
}

impl<T, S> Shard<T, S> {
    /// The owner's extra state.
    pub(crate) fn ext(&self) -> &S {
        &self.common.ext
    }
}

/// A set of slabs, each behind its own mutex, with one atomic count over all of them.
///
/// Insert and remove lock one shard for a few instructions; `len` reads one atomic; visits lock
/// one shard at a time. No operation ever holds two locks.
#[derive(Debug)]
pub(crate) struct Shards<T, S> {
    shards: Box<[Arc<Shard<T, S>>]>,
    common: Arc<Common<S>>,
    mask: usize,
}

impl<T, S> Shards<T, S> {
    /// `count` is rounded up to a power of two, at least 1.
    pub(crate) fn new(count: usize, ext: S) -> Self {
        let count = count.max(1).next_power_of_two();
        let common = Arc::new(Common {
            len: AtomicUsize::new(0),
            ext,
        });
        Self {
            shards: (0..count)
                .map(|_| {
                    Arc::new(Shard {
                        slab: Mutex::new(Slab::new()),
                        common: common.clone(),
                    })
                })
                .collect(),
            common,
            mask: count - 1,
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The slots held over all shards, used or not: what the registry's memory and a full visit
    /// scale with.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().capacity()).sum()
    }

    /// The owner's extra state.
    pub(crate) fn ext(&self) -> &S {
        &self.common.ext
    }

    /// Inserts `value` in the shard chosen by `hint` (any well-mixed number, such as random id
    /// bits).
    pub(crate) fn insert(&self, hint: usize, value: T) -> Key<T, S> {
        // Count first: `len` may briefly over-count, never under-count, so a drain that sees 0
        // really has nothing left.
        self.common.len.fetch_add(1, Ordering::AcqRel);
        let shard = &self.shards[hint & self.mask];
        let slot = shard.lock().insert(value);
        Key {
            shard: shard.clone(),
            slot: u32::try_from(slot).expect("fewer than 2^32 values in one shard"),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.common.len.load(Ordering::SeqCst)
    }

    /// Calls `f` on every value of the shard `hint` selects.
    ///
    /// The shard is locked for at most [`VISIT_CHUNK`] slots at a time, so a visit of a large
    /// shard never holds up inserts and removes for long. Slab slots never move, so resuming at
    /// the next slot index after re-locking sees every value that stayed in place; values added
    /// or removed meanwhile may or may not be seen.
    pub(crate) fn visit_shard_of(&self, hint: usize, mut f: impl FnMut(&T)) {
        let shard = &self.shards[hint & self.mask];
        let mut start = 0;
        loop {
            let slab = shard.lock();
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
