//! Notifiers: every notifier is told independently; none can silence, delay or crash another,
//! and a flood never becomes a flood of tasks.

use genro_test_support::eventually;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use genro_notify::{Notification, Notifiers, Severity};

fn note(i: usize) -> Notification {
    Notification::new("test", Severity::Critical, format!("n{i}"))
}

fn counter() -> (
    Arc<AtomicUsize>,
    impl Fn(Notification) -> std::future::Ready<()> + Send + Sync,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    (count, move |_n: Notification| {
        seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(())
    })
}

#[tokio::test(start_paused = true)]
async fn a_hanging_notifier_delays_no_other_and_is_abandoned_at_its_limit() {
    let (count, working) = counter();
    let hung = Arc::new(AtomicUsize::new(0));
    let set = Notifiers::new()
        .timeout(Duration::from_secs(1))
        .with("hangs", {
            let hung = hung.clone();
            move |_n: Notification| {
                hung.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>()
            }
        })
        .with("works", working);
    for i in 0..5 {
        set.send(note(i));
    }
    // Without advancing time at all, the working notifier has every notification.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(count.load(Ordering::SeqCst), 5);
    assert_eq!(hung.load(Ordering::SeqCst), 1, "one call at a time");
    // Each hung call is abandoned after 1 s, and the next one starts.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(hung.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_panicking_notifier_is_contained_and_keeps_receiving() {
    let (count, working) = counter();
    let calls = Arc::new(AtomicUsize::new(0));
    let set = Notifiers::new()
        .with(
            "panics-at-once",
            |_n: Notification| -> std::future::Ready<()> { panic!("notifier bug") },
        )
        .with("panics-later", {
            let calls = calls.clone();
            move |_n: Notification| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { panic!("async notifier bug") }
            }
        })
        .with("works", working);
    for i in 0..3 {
        set.send(note(i));
    }
    eventually("the working notifier got all three", || {
        count.load(Ordering::SeqCst) == 3
    })
    .await;
    eventually("the panicking notifier was called for each", || {
        calls.load(Ordering::SeqCst) == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_uses_bounded_queues_not_a_task_per_notification() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let set = Notifiers::new()
        .queue_capacity(100)
        .timeout(Duration::from_secs(30))
        .with("slow", |_n: Notification| {
            tokio::time::sleep(Duration::from_secs(3600))
        });
    for i in 0..10_000 {
        set.send(note(i));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let alive = metrics.num_alive_tasks() - before;
    assert!(alive <= 2, "{alive} tasks for 10,000 notifications");
    let dropped = set.dropped();
    assert!(
        (9_899..=9_900).contains(&dropped),
        "dropped {dropped}: a queue of 100 plus the one being delivered"
    );
}

#[test]
fn without_a_runtime_nothing_panics_and_the_loss_is_counted() {
    let (count, working) = counter();
    let set = Notifiers::new().with("works", working);
    set.send(note(0));
    assert_eq!(set.dropped(), 1);
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[test]
fn adding_to_a_clone_leaves_the_original_alone() {
    let base = Notifiers::new().with("a", counter().1);
    let more = base.clone().with("b", counter().1);
    assert_eq!(base.len(), 1);
    assert_eq!(more.len(), 2);
}
