//! Waiting on state, not on the clock: a test polls what it waits for, every 10 ms of tokio
//! time (which a paused clock advances), and fails with what it waited for after 20 s.

use std::time::Duration;

/// How long a wait lasts before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// How often the state is looked at.
const EVERY: Duration = Duration::from_millis(10);

/// Waits until `probe` gives a value, and returns it.
///
/// # Panics
///
/// When `probe` gives nothing for 20 s: the panic names `what`.
pub async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // The first tick is at once: the state is looked at before any wait.
    let mut looks = tokio::time::interval(EVERY);
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        looks.tick().await;
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

/// Waits until `check` is true.
///
/// # Panics
///
/// When it is still false after 20 s: the panic names `what`.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    wait_for(what, async || check().then_some(())).await;
}
