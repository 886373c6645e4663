//! The stop: readiness off and `drain_delay` of serving on, then the bounded drain: listeners
//! closed, connections asked to close, in-flight requests and executor jobs awaited until
//! `drain_timeout`, then whatever is left aborted and reported, each with what its task was
//! waiting on.

use std::time::Duration;

use genro_envelope::taskdump::{TaskDumper, TraceReport};

use super::signals::Signals;
use crate::{
    config::ShutdownSection,
    conn::Connections,
    state::{Lifecycle, Shared},
};

/// The bounded drain: readiness off, listeners closed, connections asked to close, in-flight
/// requests awaited until `drain_timeout`, then whatever is left aborted and reported. A second
/// signal aborts at once.
pub(crate) async fn drain(
    shared: &Shared,
    shutdown: &ShutdownSection,
    connections: &Connections,
    signals: &mut Signals,
) {
    let began = tokio::time::Instant::now();
    shared.begin_drain();
    let in_flight = shared.registry.len();
    tracing::info!(
        in_flight,
        connections = connections.open(),
        executor_jobs = shared.executors.threads().busy(),
        drain_timeout = ?shutdown.drain_timeout,
        "draining"
    );
    let idle = async {
        shared.registry.wait_idle(Duration::MAX).await;
        connections.closed().await;
        shared.executors.idle().await;
    };
    let finished = tokio::select! {
        () = idle => true,
        () = tokio::time::sleep(shutdown.drain_timeout) => false,
        signal = signals.next_stop() => {
            tracing::warn!(%signal, "second signal: aborting the drain");
            false
        }
    };
    let mut aborted = 0;
    if !finished {
        let left = shared.registry.snapshot();
        // What each one is waiting on, as one batch of traces (bounded by the dumper's timeout).
        let traces = TaskDumper::global()
            .waiting_on_all(left.iter().map(|e| &**e))
            .await;
        for (envelope, trace) in left.iter().zip(traces) {
            aborted += 1;
            // A `str` field: one line in text logs, with the trace's line breaks escaped.
            let trace = TraceReport(trace).to_string();
            tracing::warn!(
                request_id = %envelope.internal_id().hyphenated(),
                error_id = %envelope.short_id(),
                method = %envelope.method(),
                path = %genro_envelope::plumbing::truncated(envelope.path(), genro_notify::MAX_REPORTED_PATH),
                age_s = envelope.age().as_secs_f64(),
                phase = %envelope.phase(),
                trace = trace.as_str(),
                "request aborted: it outlived the drain"
            );
        }
        // Each is answered 503 with its error id where its handler is still running; then the
        // connections drop what is left (a response body still being sent).
        for envelope in &left {
            envelope.cancel();
        }
        // Their connections, asked to close when the drain began, close once those answers are
        // written.
        let _ = tokio::time::timeout(Duration::from_millis(500), connections.closed()).await;
        shared.lifecycle.send_replace(Lifecycle::Aborting);
        // The connections drop their requests now; give their tasks a moment to end.
        let _ = tokio::time::timeout(Duration::from_secs(1), connections.closed()).await;
    }
    tracing::info!(
        finished = in_flight.saturating_sub(aborted),
        aborted,
        took_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        "drain complete"
    );
}

/// Readiness off at once; then, for `[shutdown] drain_delay`, the server goes on accepting and
/// serving, so that a load balancer that polls readiness stops sending before connections are
/// refused. A second stop (signal or handle) ends the delay.
pub(crate) async fn delay_drain(
    shared: &Shared,
    shutdown: &ShutdownSection,
    signals: &mut Signals,
) {
    shared
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    let delay = shutdown.drain_delay;
    if delay.is_zero() {
        return;
    }
    tracing::info!(
        drain_delay = ?delay,
        "not ready: serving on for the drain delay, then draining"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        signal = signals.next_stop() => tracing::info!(%signal, "second signal: draining now"),
        () = shared.stops.notified() => tracing::info!("second shutdown: draining now"),
    }
}
