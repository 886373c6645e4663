use std::{
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use tokio::sync::mpsc;

use crate::Notification;

/// The future a [`Notifier`] returns.
pub type NotifyFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something that delivers [`Notification`]s: a webhook, a pager, a chat channel, a test probe.
///
/// It is the one way genro tells someone: the watchdog's stuck-request reports and the error
/// layer's critical errors both go through notifiers, usually held in a [`Notifiers`] set that
/// calls each one on its own task with its own time limit. An implementation should still
/// return quickly, queueing slow work (as `WebhookNotifier` does).
///
/// Any `Fn(Notification) -> impl Future<Output = ()>` closure is a notifier.
pub trait Notifier: Send + Sync + 'static {
    /// Delivers, or queues for delivery, one notification.
    fn notify(&self, notification: Notification) -> NotifyFuture;
}

impl<F, Fut> Notifier for F
where
    F: Fn(Notification) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn notify(&self, notification: Notification) -> NotifyFuture {
        Box::pin(self(notification))
    }
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        (**self).notify(notification)
    }
}

/// The default time limit of one notifier call; see [`Notifiers::timeout`].
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// The default number of notifications that may wait for one notifier; see
/// [`Notifiers::queue_capacity`].
pub const DEFAULT_NOTIFY_QUEUE: usize = 1024;

/// A set of [`Notifier`]s that are told the same things, each independently of the others.
///
/// [`send`](Self::send) never waits and never starts a task per notification. Each notifier
/// has its own bounded queue and its own task, started on the first notification:
/// - a notifier that is slow, hangs or panics delays only its own queue: every call is limited
///   by [`timeout`](Self::timeout) and runs in a task of its own, so a panic is contained and
///   the next notification is still delivered;
/// - a full queue drops the notification for that notifier only, counts it and logs it
///   (rate-limited), so a mass stall of ten thousand requests costs ten thousand queue slots at
///   most, never ten thousand tasks;
/// - without a tokio runtime nothing can be delivered: the notification is counted as dropped
///   and logged, and nothing panics.
///
/// Cloning is cheap; clones share the notifiers and their queues. Adding a notifier to a clone
/// changes only that clone's set.
#[derive(Clone)]
pub struct Notifiers {
    entries: Arc<Vec<Arc<Entry>>>,
    timeout: Duration,
    queue: usize,
}

struct Entry {
    notifier: Arc<dyn Notifier>,
    name: String,
    // The worker is made with the first notification, on the runtime that sends it; its
    // settings are those of the set that started it.
    tx: OnceLock<mpsc::Sender<Notification>>,
    dropped: AtomicU64,
}

impl Notifiers {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: Arc::new(Vec::new()),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
            queue: DEFAULT_NOTIFY_QUEUE,
        }
    }

    /// Adds `notifier`; `name` appears in the log lines about it (use something like
    /// `"webhook"` or `"pager"`, never a URL with a secret in it).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, notifier: impl Notifier) -> Self {
        self.push(name, notifier);
        self
    }

    /// Adds `notifier` in place; see [`with`](Self::with).
    pub fn push(&mut self, name: impl Into<String>, notifier: impl Notifier) {
        Arc::make_mut(&mut self.entries).push(Arc::new(Entry {
            notifier: Arc::new(notifier),
            name: name.into(),
            tx: OnceLock::new(),
            dropped: AtomicU64::new(0),
        }));
    }

    /// The longest one notifier call may run before it is abandoned (its task is aborted).
    /// Default 10 s. `Duration::MAX` means no limit.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// How many notifications may wait for each notifier; beyond that they are dropped and
    /// counted. Default 1,024; at least 1.
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// How many notifiers the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set holds no notifier.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many notifications were dropped so far, over every notifier of the set (full queue,
    /// or no runtime to deliver them).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Hands `notification` to every notifier, without waiting for any of them.
    pub fn send(&self, notification: Notification) {
        let Some((last, rest)) = self.entries.split_last() else {
            return;
        };
        for entry in rest {
            self.send_to(entry, notification.clone());
        }
        self.send_to(last, notification);
    }

    fn send_to(&self, entry: &Arc<Entry>, notification: Notification) {
        let tx = if let Some(tx) = entry.tx.get() {
            tx
        } else {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                entry.drop_one("no tokio runtime to deliver it on");
                return;
            };
            let (tx, rx) = mpsc::channel(self.queue);
            if entry.tx.set(tx).is_ok() {
                runtime.spawn(run(entry.clone(), rx, self.timeout));
            }
            // Set here or by a racing sender: either way there is one worker.
            entry.tx.get().expect("set just above")
        };
        if tx.try_send(notification).is_err() {
            entry.drop_one("queue full");
        }
    }
}

impl Entry {
    fn drop_one(&self, why: &'static str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // Logged at 1, 2, 4, 8, ... drops: visible, but a flood cannot flood the log too.
        if dropped.is_power_of_two() {
            tracing::warn!(
                notifier = %self.name,
                dropped,
                reason = why,
                "notification dropped"
            );
        }
    }
}

async fn run(entry: Arc<Entry>, mut rx: mpsc::Receiver<Notification>, limit: Duration) {
    while let Some(notification) = rx.recv().await {
        let kind = notification.kind.clone();
        // A notifier that panics while making its future, or while running it, is contained:
        // the next notification still goes out.
        let Ok(future) = catch_unwind(AssertUnwindSafe(|| entry.notifier.notify(notification)))
        else {
            tracing::error!(notifier = %entry.name, kind, "notifier panicked");
            continue;
        };
        let task = tokio::spawn(future);
        let abort = task.abort_handle();
        match tokio::time::timeout(limit, task).await {
            Ok(Err(e)) if e.is_panic() => {
                tracing::error!(notifier = %entry.name, kind, "notifier panicked");
            }
            // Done, or aborted (never by this loop before its time limit).
            Ok(_) => {}
            Err(_) => {
                abort.abort();
                tracing::warn!(notifier = %entry.name, kind, ?limit, "notifier timed out");
            }
        }
    }
}

impl Default for Notifiers {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifiers")
            .field(
                "notifiers",
                &self.entries.iter().map(|e| &e.name).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .finish()
    }
}
