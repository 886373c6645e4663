//! "What is this stuck request waiting on?" end to end, on a real `AsgiServer`: the watchdog's
//! critical log line and webhook payload, the debug console's `show --trace`, and the drain
//! report of a request aborted at its deadline.
//!
//! The same test runs in both builds. In the default one, each report says how to turn tracing
//! on. With it on, each names the function its handler is parked in, and not the other
//! handler's:
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" cargo test --features taskdump --test taskdump
//! ```
//!
//! (`.ci/run` runs both, the second with its own target directory.)
#![allow(clippy::too_many_lines)] // a test reads as one scenario

mod common;

use genro_test_support::wait_for;
use std::{sync::Arc, time::Duration};

use axum::{body::Bytes, routing::get, Router};
use genro_debug::protocol::{ClientMessage, ServerMessage};
use genro_envelope::taskdump;
use genro_server::{AsgiServer, Config};
use genro_test_support::LogBuffer;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::sync::Notify;

const SECRET: &str = "a-secret-for-the-taskdump-test";

#[inline(never)]
async fn parked_in_alpha(never: Arc<Notify>) {
    never.notified().await;
}

#[inline(never)]
async fn parked_in_beta(never: Arc<Notify>) {
    never.notified().await;
}

/// Two handlers, each stuck in its own named function on a `Notify` nobody notifies.
fn app(never: &Arc<Notify>) -> Router {
    let (a, b) = (never.clone(), never.clone());
    Router::new()
        .route(
            "/alpha",
            get(move || async move {
                parked_in_alpha(a).await;
                "never"
            }),
        )
        .route(
            "/beta",
            get(move || async move {
                parked_in_beta(b).await;
                "never"
            }),
        )
}

/// What each report must say about the request stuck in `own` (and not in `other`).
fn assert_names(text: &str, own: &str, other: &str) {
    if taskdump::AVAILABLE {
        assert!(text.contains(own), "{own} is not in: {text}");
        assert!(!text.contains(other), "{other} is in: {text}");
        assert!(
            text.contains("Notified"),
            "the tokio future it waits on: {text}"
        );
    } else {
        assert!(
            text.contains("task dumps are not") && text.contains("--cfg tokio_unstable"),
            "no trace, and no word on how to get one: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stuck_request_reports_what_it_waits_on_in_every_report() {
    let logs = LogBuffer::global();
    let (hook, received) = common::webhook().await;
    let ini = format!(
        "[server]\nport = 0\n\
         [errors]\nnotify_critical = true\nnotify_webhook = http://{hook}/hook\n\
         [watchdog]\nenabled = true\ninterval = 100ms\ntimeout = 200ms\ncritical = 400ms\n\
         [debug]\nenabled = true\ndebug_port = 0\nsecret = {SECRET}\n\
         [shutdown]\ndrain_timeout = 1s\n"
    );
    let config = Config::from_ini_str(&ini, "taskdump.ini", Vec::new()).unwrap();
    let server = AsgiServer::from_config(config).without_logging();
    let handle = server.handle();
    let never = Arc::new(Notify::new());
    let serving = tokio::spawn(server.serve(app(&never)));
    let bound = handle.bound().await.expect("bound");
    let (addr, console) = (bound.main.unwrap(), bound.debug.expect("console on"));
    // One request over HTTP/1 (its task is the connection's), two over one HTTP/2 connection
    // (each stream is a task of its own): three traces, each of its own handler alone.
    let http1 = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let mut requests = Vec::new();
    for (path, client) in [("/alpha", &http1), ("/beta", &http2), ("/alpha", &http2)] {
        let url: http::Uri = format!("http://{addr}{path}").parse().unwrap();
        let client = client.clone();
        requests.push(tokio::spawn(async move { client.get(url).await }));
    }

    // The watchdog: one critical log line and one notification per request, each with its own
    // trace (one dump for both when they turn critical in the same scan).
    let notes = wait_for("three stuck-request notifications", async || {
        let received = received.lock().unwrap();
        let stuck: Vec<_> = received
            .iter()
            .filter(|n| n["kind"] == "stuck_request")
            .cloned()
            .collect();
        (stuck.len() == 3).then_some(stuck)
    })
    .await;
    for note in &notes {
        // The W3C trace the server started for it (`[logging] start_traces`, on by default).
        let trace_id = note["request"]["trace_id"].as_str().expect("a trace id");
        assert_eq!(trace_id.len(), 32, "{trace_id}");
        let trace = note["details"]["trace"].as_str().expect("a trace detail");
        match note["request"]["path"].as_str().unwrap() {
            "/alpha" => assert_names(trace, "parked_in_alpha", "parked_in_beta"),
            "/beta" => assert_names(trace, "parked_in_beta", "parked_in_alpha"),
            other => panic!("unexpected {other}"),
        }
    }
    let server_lines = |needle: &str| {
        let lines = logs.lines(needle);
        let of = |path: &str| -> Vec<String> {
            lines
                .iter()
                .filter(|l| l.contains(&format!("path={path} ")))
                .cloned()
                .collect()
        };
        (of("/alpha"), of("/beta"))
    };
    let (alpha, beta) = server_lines("request is critically stuck");
    assert_eq!((alpha.len(), beta.len()), (2, 1), "{alpha:?}\n{beta:?}");
    for line in &alpha {
        assert_names(line, "parked_in_alpha", "parked_in_beta");
    }
    assert_names(&beta[0], "parked_in_beta", "parked_in_alpha");

    // The console: `show ID --trace`.
    let mut session =
        genro_debug::Client::connect(&console.to_string(), &genro_debug::Secret::new(SECRET))
            .await
            .unwrap();
    let ServerMessage::Requests { requests: listed } =
        session.call(&ClientMessage::Ls).await.unwrap()
    else {
        panic!("ls answers a list");
    };
    let alpha = listed
        .iter()
        .find(|r| r.target == "/alpha")
        .unwrap()
        .id
        .clone();
    let ServerMessage::Request { request } = session
        .call(&ClientMessage::Show {
            id: alpha,
            trace: true,
        })
        .await
        .unwrap()
    else {
        panic!("show answers the request");
    };
    let waiting = request.waiting_on.expect("--trace answers");
    let shown = waiting.trace.or(waiting.unavailable).unwrap();
    assert_names(&shown, "parked_in_alpha", "parked_in_beta");
    session.close().await;

    // The drain: both are aborted at its deadline, each logged with its trace.
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(15), serving)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    let aborted = logs.lines("request aborted: it outlived the drain");
    assert_eq!(aborted.len(), 3, "{}", logs.contents());
    for line in &aborted {
        if line.contains("path=/alpha ") {
            assert_names(line, "parked_in_alpha", "parked_in_beta");
        } else {
            assert_names(line, "parked_in_beta", "parked_in_alpha");
        }
    }
    for request in requests {
        let status = request
            .await
            .unwrap()
            .expect("an aborted request is answered")
            .status();
        assert_eq!(
            status, 503,
            "aborted: cancelled, answered 503 with an error id"
        );
    }
}
