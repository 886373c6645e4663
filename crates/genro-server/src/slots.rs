//! A counted set of slots, the one bound that connections and both executor pools use: at most
//! `max` held at once, how many are held now, and a wait until every one is free again.

use std::{fmt, sync::Arc};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// A slot taken; freed when dropped.
pub(crate) type Slot = OwnedSemaphorePermit;

/// Why no slot was taken at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// Every slot is held.
    Full,
    /// The slots were closed: nothing more is taken.
    Closed,
}

#[derive(Clone)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    max: u32,
}

impl Slots {
    /// `max` slots (at most tokio's limit of permits).
    pub(crate) fn new(max: usize) -> Self {
        let max = u32::try_from(max.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Self {
            semaphore: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A slot now, or why not.
    pub(crate) fn try_take(&self) -> Result<Slot, NoSlot> {
        self.semaphore
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => NoSlot::Full,
                TryAcquireError::Closed => NoSlot::Closed,
            })
    }

    /// A slot once one is free; `None` once closed.
    pub(crate) async fn take(&self) -> Option<Slot> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    /// How many slots are held.
    pub(crate) fn in_use(&self) -> usize {
        self.max as usize - self.semaphore.available_permits()
    }

    /// Waits until every slot is free.
    pub(crate) async fn all_free(&self) {
        let _ = self.semaphore.acquire_many(self.max).await;
    }
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("in_use", &self.in_use())
            .field("max", &self.max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_count_refuse_when_full_and_report_all_free() {
        let slots = Slots::new(2);
        let a = slots.try_take().unwrap();
        let b = slots.take().await.unwrap();
        assert_eq!(slots.in_use(), 2);
        assert_eq!(slots.try_take().unwrap_err(), NoSlot::Full);
        drop(a);
        assert_eq!(slots.in_use(), 1);
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.all_free().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
    }
}
