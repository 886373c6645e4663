use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::ErrorReport;

/// The future an [`Observer`] returns.
pub type ObserveFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sees every handled error before its response is sent, and may hold the response for a while:
/// the debug console's hold-on-error is an observer.
///
/// To *tell* someone about errors (a webhook, a pager), use a notifier instead
/// ([`ErrorLayer::notifier`](crate::ErrorLayer::notifier)): notifications never hold the
/// response. Observers run concurrently, each on its own task and each bounded by the layer's
/// observer timeout, so a slow, hung or panicking observer delays the response by at most that
/// bound and never keeps another observer from running. When the response is no longer awaited
/// (the client reset its stream, the connection was dropped), its observers are stopped too.
///
/// Any `Fn(Arc<ErrorReport>) -> impl Future<Output = ()>` closure is an observer.
pub trait Observer: Send + Sync + 'static {
    /// Called once per handled error.
    fn observe(&self, report: Arc<ErrorReport>) -> ObserveFuture;
}

impl<F, Fut> Observer for F
where
    F: Fn(Arc<ErrorReport>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn observe(&self, report: Arc<ErrorReport>) -> ObserveFuture {
        Box::pin(self(report))
    }
}

/// Runs every observer on its own task, all at once, and waits for them until `limit` has
/// passed; those still running then are aborted. A panic in an observer is contained by its
/// task and logged; the number of observers that panicked is returned.
pub(crate) async fn run(
    observers: &[Arc<dyn Observer>],
    report: &Arc<ErrorReport>,
    limit: Duration,
) -> usize {
    if observers.is_empty() {
        return 0;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            error_id = %report.envelope.short_id(),
            "error observers skipped: no tokio runtime"
        );
        return 0;
    };
    let mut panicked = 0;
    let deadline = tokio::time::Instant::now().checked_add(limit);
    let tasks: Vec<_> = observers
        .iter()
        .map(|observer| {
            let observer = observer.clone();
            let report = report.clone();
            // Making the future is the observer's code too: it runs inside the task.
            runtime.spawn(async move { observer.observe(report).await })
        })
        .collect();
    // A response nobody waits for any more (the client reset its stream, the drain dropped the
    // connection) takes its observers with it: a hold ends with its request.
    let _abort = AbortOnDrop(
        tasks
            .iter()
            .map(tokio::task::JoinHandle::abort_handle)
            .collect(),
    );
    for (index, task) in tasks.into_iter().enumerate() {
        let abort = task.abort_handle();
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, task).await,
            None => Ok(task.await),
        };
        match outcome {
            Ok(Err(e)) if e.is_panic() => {
                panicked += 1;
                tracing::error!(error_id = %report.envelope.short_id(), observer = index, "error observer panicked");
            }
            Ok(_) => {}
            Err(_) => {
                abort.abort();
                tracing::warn!(error_id = %report.envelope.short_id(), observer = index, ?limit, "error observer timed out");
            }
        }
    }
    panicked
}

/// Aborts the tasks when dropped; finished tasks are left as they are.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
