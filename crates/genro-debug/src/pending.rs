//! Connections that have not logged in yet: a budget of their own, apart from the sessions.
//!
//! On a console bound to 127.0.0.1, the operator and any local user share one address, and the
//! allowlist cannot tell them apart. A connection that has not logged in therefore holds no
//! session: it holds a place among at most [`MAX_PENDING`] such connections, for at most
//! `debug.login_timeout` from its accept, and when a new connection finds every place taken, the
//! oldest is closed to make room. Connections that stall (a trickled HTTP head, a WebSocket that
//! never answers its challenge) cannot keep a new one out: a login, which takes a few round
//! trips, always finds a place unless others arrive faster than it completes.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use tokio::sync::watch;

/// Connections not logged in, at most, across all addresses.
pub(crate) const MAX_PENDING: usize = 16;

/// The connections that have not logged in, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    queue: Mutex<VecDeque<(u64, watch::Sender<bool>)>>,
    next: AtomicU64,
}

/// A place among the pending connections, given back when dropped (at login, or when the
/// connection ends).
#[derive(Debug)]
pub(crate) struct PendingPlace {
    pending: Arc<Pending>,
    id: u64,
    taken: Taken,
}

/// Tells when a newer connection took a place; any number of clones can wait.
#[derive(Debug, Clone)]
pub(crate) struct Taken(watch::Receiver<bool>);

impl Pending {
    /// A place for a new connection; returns whether the oldest had to be closed for it.
    pub(crate) fn admit(self: &Arc<Self>) -> (PendingPlace, bool) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tell, taken) = watch::channel(false);
        let mut queue = self.lock();
        let evicted = if queue.len() >= MAX_PENDING {
            queue.pop_front()
        } else {
            None
        };
        queue.push_back((id, tell));
        drop(queue);
        if let Some((_, oldest)) = &evicted {
            // Kept if its connection is not waiting yet: it sees it at its next wait.
            oldest.send_replace(true);
        }
        let place = PendingPlace {
            pending: self.clone(),
            id,
            taken: Taken(taken),
        };
        (place, evicted.is_some())
    }

    /// How many connections hold a place.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, watch::Sender<bool>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PendingPlace {
    /// What tells when a newer connection took this place.
    pub(crate) fn taken(&self) -> Taken {
        self.taken.clone()
    }
}

impl Taken {
    /// Resolves when a newer connection took the place.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|taken| *taken).await.map(|_| ());
    }
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        let mut queue = self.pending.lock();
        if let Some(at) = queue.iter().position(|(id, _)| *id == self.id) {
            queue.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::{Pending, MAX_PENDING};

    #[tokio::test]
    async fn a_new_connection_closes_the_oldest_when_every_place_is_taken() {
        let pending = Arc::new(Pending::default());
        let mut places: Vec<_> = (0..MAX_PENDING)
            .map(|_| {
                let (place, evicted) = pending.admit();
                assert!(!evicted);
                place
            })
            .collect();
        assert_eq!(pending.len(), MAX_PENDING);
        let (newest, evicted) = pending.admit();
        assert!(evicted);
        assert_eq!(pending.len(), MAX_PENDING);
        // The oldest is told, even though it was not waiting yet; the others are not.
        let oldest = places.remove(0);
        tokio::time::timeout(Duration::from_secs(1), oldest.taken().wait())
            .await
            .expect("the oldest is closed");
        let second = &places[0];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.taken().wait())
                .await
                .is_err(),
            "only the oldest"
        );
        // Places are given back when dropped, the evicted one's too (it was no longer queued).
        drop(oldest);
        assert_eq!(pending.len(), MAX_PENDING);
        drop(places);
        drop(newest);
        assert_eq!(pending.len(), 0);
    }
}
