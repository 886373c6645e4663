//! `taskdump::waiting_on`: the trace of one request's task, and the limits around a dump.
//!
//! The traces are only in a build with task dumps:
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test -p genro-envelope --features taskdump --test taskdump`
//! (`.ci/run` runs it). The default build checks the answer that says how to turn them on.

use std::sync::Arc;

use genro_envelope::{
    taskdump::{self, TaskDumper, TraceUnavailable},
    RequestEnvelope,
};
use http::Method;
use tokio::sync::{oneshot, Notify};

/// A request whose envelope is made inside its own task, as `EnvelopeLayer` makes it, and whose
/// handler then parks in `park`.
async fn stuck_request<F>(park: impl FnOnce() -> F + Send + 'static) -> Arc<RequestEnvelope>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let envelope = Arc::new(RequestEnvelope::new(Method::GET, "/stuck".parse().unwrap()));
        tx.send(envelope.clone()).unwrap();
        park().await;
        drop(envelope);
    });
    let envelope = rx.await.unwrap();
    // Let the task reach its await.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    envelope
}

#[inline(never)]
async fn parked_in_alpha(notify: Arc<Notify>) {
    notify.notified().await;
}

#[cfg(all(tokio_unstable, feature = "taskdump"))]
#[inline(never)]
async fn parked_in_beta(notify: Arc<Notify>) {
    notify.notified().await;
}

#[tokio::test]
async fn the_envelope_records_the_task_that_made_it() {
    let outside = RequestEnvelope::new(Method::GET, "/".parse().unwrap());
    assert_eq!(outside.task_id(), None, "block_on's future is not a task");
    let (id, envelope) = tokio::spawn(async {
        let envelope = RequestEnvelope::new(Method::GET, "/".parse().unwrap());
        (tokio::task::id(), envelope)
    })
    .await
    .unwrap();
    assert_eq!(envelope.task_id(), Some(id));
}

#[cfg(not(all(tokio_unstable, feature = "taskdump")))]
#[tokio::test]
async fn without_task_dumps_every_answer_says_how_to_turn_them_on() {
    const { assert!(!taskdump::AVAILABLE) };
    let notify = Arc::new(Notify::new());
    let n = notify.clone();
    let envelope = stuck_request(move || parked_in_alpha(n)).await;
    let why = taskdump::waiting_on(&envelope).await.unwrap_err();
    assert_eq!(why, TraceUnavailable::NotBuilt);
    let text = why.to_string();
    assert!(text.contains("--cfg tokio_unstable"), "{text}");
    assert!(text.contains("taskdump"), "{text}");
    let all = TaskDumper::global()
        .waiting_on_all([&*envelope, &*envelope])
        .await;
    assert_eq!(all, vec![Err(TraceUnavailable::NotBuilt); 2]);
    notify.notify_one();
}

#[cfg(all(tokio_unstable, feature = "taskdump"))]
mod with_task_dumps {
    use std::time::Duration;

    use genro_envelope::taskdump::DumpLimits;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_request_gets_its_own_trace_and_dumps_are_rate_limited() {
        const { assert!(taskdump::AVAILABLE) };
        let dumper = TaskDumper::new(DumpLimits::default().min_interval(Duration::from_secs(10)));
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let n = a.clone();
        let alpha = stuck_request(move || parked_in_alpha(n)).await;
        let n = b.clone();
        let beta = stuck_request(move || parked_in_beta(n)).await;

        let traces = dumper.waiting_on_all([&*alpha, &*beta]).await;
        let alpha_trace = traces[0].as_ref().expect("alpha traced").text().to_owned();
        let beta_trace = traces[1].as_ref().expect("beta traced").text().to_owned();
        assert!(alpha_trace.contains("parked_in_alpha"), "{alpha_trace}");
        assert!(!alpha_trace.contains("parked_in_beta"), "{alpha_trace}");
        assert!(beta_trace.contains("parked_in_beta"), "{beta_trace}");
        assert!(!beta_trace.contains("parked_in_alpha"), "{beta_trace}");
        // Innermost first: the tokio future it is parked on comes before the function.
        let notified = alpha_trace
            .find("Notified")
            .expect("the tokio leaf is named");
        assert!(
            notified < alpha_trace.find("parked_in_alpha").unwrap(),
            "{alpha_trace}"
        );

        // Within min_interval: the last dump answers for what it holds...
        tokio::time::advance(Duration::from_secs(3)).await;
        let again = dumper.waiting_on(&alpha).await.expect("from the last dump");
        assert_eq!(again.text(), alpha_trace);
        assert!(again.age() >= Duration::from_secs(3), "{:?}", again.age());
        // ...and a request that started after it waits for the next one.
        let c = Arc::new(Notify::new());
        let n = c.clone();
        let gamma = stuck_request(move || parked_in_alpha(n)).await;
        match dumper.waiting_on(&gamma).await {
            Err(TraceUnavailable::RateLimited { retry_in }) => {
                assert_eq!(retry_in, Duration::from_secs(7));
            }
            other => panic!("expected rate-limited, got {other:?}"),
        }
        tokio::time::advance(Duration::from_secs(7)).await;
        let fresh = dumper.waiting_on(&gamma).await.expect("a new dump");
        assert!(fresh.text().contains("parked_in_alpha"), "{}", fresh.text());
        assert_eq!(fresh.age(), Duration::ZERO);

        // An ended request's task is not in a fresh dump.
        a.notify_one();
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            dumper.waiting_on(&alpha).await,
            Err(TraceUnavailable::NotFound)
        );
        b.notify_one();
        c.notify_one();
    }

    #[tokio::test(start_paused = true)]
    async fn a_trace_is_cut_to_max_bytes() {
        let dumper = TaskDumper::new(DumpLimits::default().max_bytes(300));
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let envelope = stuck_request(move || parked_in_alpha(n)).await;
        let trace = dumper.waiting_on(&envelope).await.unwrap();
        assert!(trace.is_cut());
        assert!(trace.text().len() <= 300, "{}", trace.text().len());
        assert!(
            trace.text().contains("outer frames cut"),
            "{}",
            trace.text()
        );
        notify.notify_one();
    }

    #[tokio::test(start_paused = true)]
    async fn a_mass_stall_costs_one_dump_and_a_bounded_number_of_traces() {
        let dumper = TaskDumper::new(DumpLimits::default());
        let notify = Arc::new(Notify::new());
        let mut stuck = Vec::new();
        for _ in 0..taskdump::MAX_TRACES_PER_DUMP + 8 {
            let n = notify.clone();
            stuck.push(stuck_request(move || parked_in_alpha(n)).await);
        }
        let traces = dumper.waiting_on_all(stuck.iter().map(|e| &**e)).await;
        let (traced, omitted) = traces.split_at(taskdump::MAX_TRACES_PER_DUMP);
        assert!(traced.iter().all(Result::is_ok));
        assert!(omitted.iter().all(|t| t == &Err(TraceUnavailable::Omitted)));
        notify.notify_waiters();
    }

    #[inline(never)]
    async fn blocks_its_worker() {
        std::thread::sleep(Duration::from_millis(1500));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_worker_is_reported_instead_of_stalling_the_runtime() {
        let dumper = TaskDumper::new(DumpLimits::default().min_interval(Duration::ZERO));
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let envelope = stuck_request(move || parked_in_alpha(n)).await;
        let blocker = tokio::spawn(blocks_its_worker());
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The other worker keeps serving while the dumper looks.
        let ticks = tokio::spawn(async {
            let mut ticks = 0u32;
            let end = tokio::time::Instant::now() + Duration::from_millis(400);
            while tokio::time::Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks += 1;
            }
            ticks
        });
        match dumper.waiting_on(&envelope).await {
            Err(TraceUnavailable::WorkerBlocked { .. }) => {}
            other => panic!("expected a blocked worker, got {other:?}"),
        }
        assert!(ticks.await.unwrap() > 10, "the runtime kept serving");
        blocker.await.unwrap();
        let trace = dumper
            .waiting_on(&envelope)
            .await
            .expect("traced once unblocked");
        assert!(trace.text().contains("parked_in_alpha"), "{}", trace.text());
        notify.notify_one();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dump_past_its_timeout_is_reported_and_blocks_the_next_until_it_ends() {
        // No dump of a multi-thread runtime (a thread, a barrier, every task re-polled) takes a
        // microsecond.
        let dumper = TaskDumper::new(
            DumpLimits::default()
                .min_interval(Duration::ZERO)
                .timeout(Duration::from_micros(1)),
        );
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let envelope = stuck_request(move || parked_in_alpha(n)).await;
        let started = std::time::Instant::now();
        let first = dumper.waiting_on(&envelope).await;
        assert_eq!(
            first,
            Err(TraceUnavailable::TimedOut {
                after: Duration::from_micros(1)
            })
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            dumper.waiting_on(&envelope).await,
            Err(TraceUnavailable::Busy)
        );
        // Once that dump ends, a dumper with room to wait answers.
        dumper.set_limits(DumpLimits::default().min_interval(Duration::ZERO));
        let mut answer = dumper.waiting_on(&envelope).await;
        for _ in 0..50 {
            if answer != Err(TraceUnavailable::Busy) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            answer = dumper.waiting_on(&envelope).await;
        }
        assert!(answer.expect("traced").text().contains("parked_in_alpha"));
        notify.notify_one();
    }
}
