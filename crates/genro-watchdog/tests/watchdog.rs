//! The watchdog with paused tokio time: reports exactly once per level, one notifier call,
//! finished requests forgotten, no reports for fast requests, and extremes that neither panic
//! nor flood: mass stalls, huge registries, huge intervals, no runtime.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

use genro_test_support::metrics_text;
use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use genro_envelope::EnvelopeLayer;
use genro_notify::{Notification, Severity};
use genro_registry::{EnvelopeRegistry, RegistryLayer};
use genro_test_support::LogBuffer;
use genro_watchdog::{Watchdog, WatchdogConfig};
use http::{Request, Response};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tower::{service_fn, ServiceBuilder, ServiceExt};

const CONFIG: WatchdogConfig = WatchdogConfig {
    interval: Duration::from_secs(1),
    timeout: Duration::from_secs(5),
    critical: Duration::from_secs(20),
};

#[tokio::test(start_paused = true)]
async fn a_stuck_request_is_reported_once_per_level_and_notified_once() {
    let (logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let notified: Arc<Mutex<Vec<Notification>>> = Arc::default();
    let watchdog = Watchdog::new(registry.clone(), CONFIG).notifier({
        let notified = notified.clone();
        move |n: Notification| {
            notified.lock().unwrap().push(n);
            async {}
        }
    });
    let mut metrics = Registry::default();
    watchdog.register_metrics(&mut metrics);
    let handle = watchdog.spawn().unwrap();

    // A request whose handler waits until released.
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(Mutex::new(Some(released)));
    let svc = ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(RegistryLayer::new(registry.clone()))
        .service(service_fn(move |req: Request<()>| {
            let released = released.lock().unwrap().take();
            let envelope = genro_envelope::RequestEnvelope::from_request(&req)
                .unwrap()
                .clone();
            async move {
                envelope.set_route("/reports/{id}");
                envelope.annotate("tenant", "acme");
                if let Some(released) = released {
                    let _ = released.await;
                }
                Ok::<_, Infallible>(Response::new(()))
            }
        }));
    let request = Request::get("/reports/7")
        .header("x-request-id", "ext-stuck-1")
        .body(())
        .unwrap();
    let in_flight = tokio::spawn(svc.oneshot(request));
    tokio::task::yield_now().await;
    let envelope = registry.snapshot().pop().expect("the request is in flight");
    let id = envelope.internal_id_string();

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        logs.lines("request is slow").is_empty(),
        "not yet past timeout"
    );

    tokio::time::sleep(Duration::from_secs(12)).await; // age 16 s: past timeout only
    let warnings = logs.lines("request is slow");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("WARN"));
    assert!(warnings[0].contains(&id) && warnings[0].contains("ext-stuck-1"));
    assert!(warnings[0].contains("/reports/{id}") && warnings[0].contains("tenant"));
    assert!(notified.lock().unwrap().is_empty());

    tokio::time::sleep(Duration::from_secs(40)).await; // age 56 s: past critical, many scans
    let critical = logs.lines("request is critically stuck");
    assert_eq!(critical.len(), 1, "{critical:?}\n{}", logs.contents());
    assert!(critical[0].contains("ERROR") && critical[0].contains("severity=\"critical\""));
    assert!(critical[0].contains(&id) && critical[0].contains("/reports/{id}"));
    // The trace of what it waits on (tests/taskdump.rs checks one in a build with task dumps):
    // here, the sentence that says how to turn them on.
    assert!(
        critical[0].contains("trace=\"unavailable: task dumps are not")
            && critical[0].contains("--cfg tokio_unstable"),
        "{}",
        critical[0]
    );
    assert!(!warnings[0].contains("trace="), "a warning takes no dump");
    assert_eq!(logs.lines("request is slow").len(), 1, "no second warning");
    tokio::task::yield_now().await;
    {
        let notified = notified.lock().unwrap();
        assert_eq!(notified.len(), 1, "one notifier call");
        let request = notified[0].request.as_ref().unwrap();
        assert_eq!(notified[0].severity, Severity::Critical);
        assert_eq!(request.internal_id, id);
        assert_eq!(request.route.as_deref(), Some("/reports/{id}"));
        assert_eq!(
            request.annotations.get("tenant").map(String::as_str),
            Some("acme")
        );
        let trace = &notified[0].details["trace"];
        assert!(trace.contains("--cfg tokio_unstable"), "{trace}");
    }
    let text = metrics_text(&metrics);
    assert!(
        text.contains("requests_stuck_total{severity=\"warning\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("requests_stuck_total{severity=\"critical\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("requests_stuck_now{severity=\"critical\"} 1"),
        "{text}"
    );

    // Finished: no longer stuck, no longer remembered.
    release.send(()).unwrap();
    in_flight.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = metrics_text(&metrics);
    assert!(
        text.contains("requests_stuck_now{severity=\"critical\"} 0"),
        "{text}"
    );
    assert_eq!(notified.lock().unwrap().len(), 1);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_fast_requests_produce_no_report() {
    let (logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let calls = Arc::new(Mutex::new(0usize));
    let watchdog = Watchdog::new(
        registry.clone(),
        WatchdogConfig {
            interval: Duration::from_millis(10),
            ..CONFIG
        },
    )
    .notifier({
        let calls = calls.clone();
        move |_n: Notification| {
            *calls.lock().unwrap() += 1;
            async {}
        }
    });
    let mut metrics = Registry::default();
    watchdog.register_metrics(&mut metrics);
    let handle = watchdog.spawn().unwrap();
    let svc = ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(RegistryLayer::new(registry.clone()))
        .service(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<_, Infallible>(Response::new(()))
        }));
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.push(tokio::spawn(svc.clone().oneshot(Request::new(()))));
        if i % 500 == 499 {
            for r in batch.drain(..) {
                r.await.unwrap().unwrap();
            }
        }
    }
    assert!(registry.is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(logs.lines("request is").is_empty());
    assert_eq!(*calls.lock().unwrap(), 0);
    let text = metrics_text(&metrics);
    assert!(
        !text.contains("requests_stuck_total{severity=\"warning\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("requests_stuck_now{severity=\"warning\"} 0"),
        "{text}"
    );
    handle.stop().await;
}

/// Every test here runs under a scoped subscriber. tracing caches each event site's interest
/// process-wide; a test emitting events with no subscriber at all can leave a site marked
/// uninteresting while another test's subscriber is being installed, and that test then misses
/// its log lines.
fn scoped_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    LogBuffer::scoped()
}

#[tokio::test(start_paused = true)]
async fn thresholds_change_while_running_and_bad_ones_are_refused() {
    let (_logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let watchdog = Watchdog::new(registry.clone(), CONFIG);
    let mut metrics = Registry::default();
    watchdog.register_metrics(&mut metrics);
    let handle = watchdog.spawn().unwrap();
    let _guard = registry.track(Arc::new(genro_envelope::RequestEnvelope::new(
        http::Method::GET,
        http::Uri::from_static("/x"),
    )));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(metrics_text(&metrics).contains("requests_stuck_now{severity=\"warning\"} 0"));

    // Lower the timeout live: the same 3-second-old request is now stuck.
    handle
        .set_config(WatchdogConfig {
            timeout: Duration::from_secs(2),
            ..CONFIG
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(metrics_text(&metrics).contains("requests_stuck_now{severity=\"warning\"} 1"));

    let err = handle
        .set_config(WatchdogConfig {
            critical: Duration::from_secs(1),
            ..CONFIG
        })
        .unwrap_err();
    assert!(err
        .to_string()
        .starts_with("watchdog.critical: must be above watchdog.timeout"));
    assert_eq!(
        handle.config().timeout,
        Duration::from_secs(2),
        "the old thresholds stay"
    );
    let bad = Watchdog::new(
        registry,
        WatchdogConfig {
            interval: Duration::ZERO,
            ..CONFIG
        },
    );
    assert!(bad
        .spawn()
        .unwrap_err()
        .to_string()
        .contains("watchdog.interval"));
    drop(handle);
}

#[tokio::test(start_paused = true)]
async fn a_request_first_seen_past_critical_is_reported_once() {
    let (logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let mut watchdog = Watchdog::new(registry.clone(), CONFIG);
    let _guard = registry.track(Arc::new(genro_envelope::RequestEnvelope::new(
        http::Method::POST,
        http::Uri::from_static("/slow"),
    )));
    tokio::time::advance(Duration::from_secs(30)).await;
    let first = watchdog.scan();
    assert_eq!((first.reported_warning, first.reported_critical), (0, 1));
    let second = watchdog.scan();
    assert_eq!((second.reported_warning, second.reported_critical), (0, 0));
    assert_eq!(second.critical, 1);
    assert_eq!(watchdog.tracked(), 1);
    drop(_guard);
    assert_eq!(watchdog.scan().visited, 0);
    assert_eq!(
        watchdog.tracked(),
        0,
        "bookkeeping of finished requests is dropped"
    );
    assert_eq!(logs.lines("request is critically stuck").len(), 1);
    assert!(logs.lines("request is slow").is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_a_task_dumper_a_critical_report_has_no_trace() {
    let (logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let notified: Arc<Mutex<Vec<Notification>>> = Arc::default();
    let handle = Watchdog::new(registry.clone(), CONFIG)
        .task_dumper(None)
        .notifier({
            let notified = notified.clone();
            move |n: Notification| {
                notified.lock().unwrap().push(n);
                async {}
            }
        })
        .spawn()
        .unwrap();
    let _guard = registry.track(envelope("/stuck"));
    tokio::time::sleep(Duration::from_secs(25)).await;
    let critical = logs.lines("request is critically stuck");
    assert_eq!(critical.len(), 1, "{}", logs.contents());
    assert!(!critical[0].contains("trace="), "{}", critical[0]);
    tokio::task::yield_now().await;
    assert!(!notified.lock().unwrap()[0].details.contains_key("trace"));
    handle.stop().await;
}

fn envelope(path: &'static str) -> Arc<genro_envelope::RequestEnvelope> {
    Arc::new(genro_envelope::RequestEnvelope::new(
        http::Method::GET,
        http::Uri::from_static(path),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_stall_starts_no_task_per_request() {
    let (_logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut watchdog = Watchdog::new(
        registry.clone(),
        WatchdogConfig {
            interval: Duration::from_secs(3600),
            timeout: Duration::from_millis(1),
            critical: Duration::from_millis(2),
        },
    )
    .notifier({
        let delivered = delivered.clone();
        move |_n: Notification| {
            delivered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // A slow notifier: had each report its own task, 10,000 would be alive now.
            tokio::time::sleep(Duration::from_millis(20))
        }
    });
    let guards: Vec<_> = (0..10_000)
        .map(|_| registry.track(envelope("/stuck")))
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let summary = watchdog.scan();
    assert_eq!(summary.reported_critical, 10_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
        - before;
    assert!(alive <= 2, "{alive} tasks for 10,000 reports");
    // The notifier's queue holds 1,024; the rest are dropped and counted, not queued forever.
    assert!(delivered.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    drop(guards);
}

#[test]
fn a_scan_outside_a_runtime_does_not_panic() {
    let registry = EnvelopeRegistry::new();
    let _guard = registry.track(envelope("/old"));
    std::thread::sleep(Duration::from_millis(5));
    let mut watchdog = Watchdog::new(
        registry,
        WatchdogConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(1),
            critical: Duration::from_millis(2),
        },
    )
    .notifier(|_n: Notification| async {});
    let summary = watchdog.scan();
    assert_eq!(summary.reported_critical, 1);
    // And spawning without a runtime is an error, not a panic.
    let err = Watchdog::new(EnvelopeRegistry::new(), CONFIG)
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_running_scan_yields_between_shards() {
    let (_logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::with_shards(64);
    let guards: Vec<_> = (0..50_000)
        .map(|_| registry.track(envelope("/x")))
        .collect();
    let mut watchdog = Watchdog::new(registry.clone(), CONFIG);
    // On a one-thread runtime, a task gets to run during the scan only if the scan yields.
    let ran_during = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let scanning = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let other = tokio::spawn({
        let ran_during = ran_during.clone();
        let scanning = scanning.clone();
        async move {
            while scanning.load(std::sync::atomic::Ordering::SeqCst) {
                ran_during.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let summary = watchdog.scan_yielding().await;
    scanning.store(false, std::sync::atomic::Ordering::SeqCst);
    other.await.unwrap();
    assert_eq!(summary.visited, 50_000);
    assert!(
        ran_during.load(std::sync::atomic::Ordering::SeqCst) >= 32,
        "another task ran {} times during a 64-shard scan",
        ran_during.load(std::sync::atomic::Ordering::SeqCst)
    );
    drop(guards);
}

#[tokio::test(start_paused = true)]
async fn a_huge_interval_works_and_stops() {
    let (_logs, _subscriber) = scoped_logs();
    let handle = Watchdog::new(
        EnvelopeRegistry::new(),
        WatchdogConfig {
            interval: Duration::MAX,
            timeout: Duration::MAX - Duration::from_secs(1),
            critical: Duration::MAX,
        },
    )
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(365 * 24 * 3600)).await;
    tokio::time::timeout(Duration::from_secs(1), handle.stop())
        .await
        .expect("stops at once");
}

#[tokio::test(start_paused = true)]
async fn a_request_a_debugger_holds_is_never_reported_as_stuck() {
    let (logs, _subscriber) = scoped_logs();
    let registry = EnvelopeRegistry::new();
    let mut watchdog = Watchdog::new(registry.clone(), CONFIG);
    let held = envelope("/held");
    let _held = registry.track(held.clone());
    let _slow = registry.track(envelope("/slow"));
    held.set_phase(genro_envelope::Phase::Held);
    tokio::time::advance(Duration::from_secs(30)).await;
    let scan = watchdog.scan();
    assert_eq!((scan.visited, scan.held, scan.critical), (2, 1, 1));
    let lines = logs.lines("request is critically stuck");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("/slow") && !lines[0].contains("/held"),
        "{lines:?}"
    );
    // Released by the debugger and still running: reported from then on.
    held.set_phase(genro_envelope::Phase::Handling);
    assert_eq!(watchdog.scan().reported_critical, 1);
}
