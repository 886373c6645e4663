//! `taskdump::waiting_on`: the trace of one request's future, and the limits around it.
//!
//! The traces are only in a build with tracing:
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test -p genro-envelope --features taskdump --test taskdump`
//! (`.ci/run` runs it). The default build checks the answer that says how to turn it on.

use std::{convert::Infallible, sync::Arc};

use genro_envelope::{
    taskdump::{self, TaskDumper, TraceUnavailable},
    EnvelopeLayer, RequestEnvelope,
};
use http::{Method, Request, Response};
use tokio::sync::{oneshot, Notify};
use tower::{service_fn, Layer, ServiceExt};

/// A request through `EnvelopeLayer` whose handler parks in `park`, served on a task of its own
/// (as a server does). Returns its envelope once the handler is parked.
async fn stuck_request<F>(park: impl FnOnce() -> F + Send + 'static) -> Arc<RequestEnvelope>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let park = std::sync::Mutex::new(Some((park, tx)));
    let svc = EnvelopeLayer::new().layer(service_fn(move |req: Request<()>| {
        let (park, tx) = park.lock().unwrap().take().unwrap();
        let envelope = RequestEnvelope::from_request(&req).unwrap().clone();
        async move {
            tx.send(envelope).unwrap();
            park().await;
            Ok::<_, Infallible>(Response::new(()))
        }
    }));
    tokio::spawn(svc.oneshot(Request::get("/stuck").body(()).unwrap()));
    let envelope = rx.await.unwrap();
    // Let the handler reach its await.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    envelope
}

#[inline(never)]
async fn parked_in_alpha(notify: Arc<Notify>) {
    notify.notified().await;
}

#[cfg(genro_taskdump)]
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

#[cfg(not(genro_taskdump))]
#[tokio::test]
async fn without_tracing_every_answer_says_how_to_turn_it_on() {
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

#[cfg(genro_taskdump)]
mod with_tracing {
    use std::time::Duration;

    use genro_envelope::taskdump::DumpLimits;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_request_gets_its_own_trace_and_batches_are_rate_limited() {
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
        // Innermost first: the tokio future it is parked on, then the function; nothing outside
        // the envelope's layer (tower's `Oneshot`, which drives the service, is not in it).
        let notified = alpha_trace
            .find("Notified")
            .expect("the tokio leaf is named");
        assert!(
            notified < alpha_trace.find("parked_in_alpha").unwrap(),
            "{alpha_trace}"
        );
        assert!(!alpha_trace.contains("Oneshot"), "{alpha_trace}");

        // The traced poll did not disturb the request: it still waits, and ends when told to.
        assert!(!alpha.is_cancelled());

        // Within min_interval: the last batch answers for what it traced...
        tokio::time::advance(Duration::from_secs(3)).await;
        let again = dumper
            .waiting_on(&alpha)
            .await
            .expect("from the last batch");
        assert_eq!(again.text(), alpha_trace);
        assert!(again.age() >= Duration::from_secs(3), "{:?}", again.age());
        // ...and a request it did not trace waits for the next one.
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
        let fresh = dumper.waiting_on(&gamma).await.expect("a new batch");
        assert!(fresh.text().contains("parked_in_alpha"), "{}", fresh.text());
        assert_eq!(fresh.age(), Duration::ZERO);

        // An answered request has no future left to trace.
        a.notify_one();
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            dumper.waiting_on(&alpha).await,
            Err(TraceUnavailable::Finished)
        );
        b.notify_one();
        c.notify_one();
    }

    #[tokio::test(start_paused = true)]
    async fn an_envelope_no_layer_made_is_not_traceable() {
        let dumper = TaskDumper::new(DumpLimits::default());
        let bare = RequestEnvelope::new(Method::GET, "/".parse().unwrap());
        assert_eq!(
            dumper.waiting_on(&bare).await,
            Err(TraceUnavailable::Unwatched)
        );
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
    async fn a_mass_stall_costs_one_batch_of_a_bounded_number_of_traces() {
        let dumper = TaskDumper::new(DumpLimits::default());
        let notify = Arc::new(Notify::new());
        let mut stuck = Vec::new();
        for _ in 0..taskdump::MAX_TRACES_PER_DUMP + 8 {
            let n = notify.clone();
            stuck.push(stuck_request(move || parked_in_alpha(n)).await);
        }
        let traces = dumper.waiting_on_all(stuck.iter().map(|e| &**e)).await;
        let (traced, omitted) = traces.split_at(taskdump::MAX_TRACES_PER_DUMP);
        assert!(traced.iter().all(Result::is_ok), "{traced:?}");
        assert!(omitted.iter().all(|t| t == &Err(TraceUnavailable::Omitted)));
        notify.notify_waiters();
    }

    #[inline(never)]
    async fn blocks_its_worker(release: Arc<std::sync::atomic::AtomicBool>) {
        while !release.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A handler that blocks its worker thread is never polled: its trace times out, the answer
    /// says why, another batch waits meanwhile, and the other requests and the runtime go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_blocking_its_worker_times_out_and_nothing_else_stalls() {
        let dumper = TaskDumper::new(
            DumpLimits::default()
                .min_interval(Duration::ZERO)
                .timeout(Duration::from_millis(300)),
        );
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = release.clone();
        let blocked = stuck_request(move || blocks_its_worker(r)).await;
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let parked = stuck_request(move || parked_in_alpha(n)).await;

        let batch = {
            let dumper = dumper.clone();
            let blocked = blocked.clone();
            tokio::spawn(async move { dumper.waiting_on(&blocked).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            dumper.waiting_on(&parked).await,
            Err(TraceUnavailable::Busy)
        );
        let answer = batch.await.unwrap();
        assert_eq!(
            answer,
            Err(TraceUnavailable::TimedOut {
                after: Duration::from_millis(300)
            })
        );
        assert!(answer
            .unwrap_err()
            .to_string()
            .contains("blocking its worker thread"));
        // The other request is traced at once, with the blocked worker still blocked.
        let trace = dumper.waiting_on(&parked).await.expect("traced");
        assert!(trace.text().contains("parked_in_alpha"), "{}", trace.text());
        release.store(true, std::sync::atomic::Ordering::Release);
        notify.notify_one();
    }
}
