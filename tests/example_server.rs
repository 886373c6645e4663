//! The example server as a user runs it: a real process, its `.ini` file, real clients and real
//! signals. `cargo test` builds the example before running the tests.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

mod common;

use bytes::Bytes;
use common::example::{example, start, start_from, Server};
use genro_test_support::http::{get, spawn_get};
use genro_test_support::process::temp_dir;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

#[test]
fn check_config_exits_zero_when_valid_and_names_every_problem_otherwise() {
    let ok = Command::new(example())
        .args(["--check-config", "--config", "examples/server.ini"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = temp_dir("check");
    let bad = dir.join("bad.ini");
    std::fs::write(
        &bad,
        "[server]\nport = eighty\nhots = x\n[limits]\nrequest_timeout = -1\n",
    )
    .unwrap();
    let out = Command::new(example())
        .args(["--check-config", "--config"])
        .arg(&bad)
        .env("GENRO_ASGI_DEBUG_ENABLED", "true")
        .env("GENRO_ASGI_DEBUG_ALLOWED_IPS", "10.0.0.0/40")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "server.port: \"eighty\" is not a port number",
        "bad.ini:2)",
        "server.hots: unknown key (did you mean `host`?)",
        "limits.request_timeout: \"-1\" is not a duration",
        "debug.allowed_ips: \"10.0.0.0/40\" is not an IP address or network",
        "(from GENRO_ASGI_DEBUG_ALLOWED_IPS)",
        "debug.secret: must be at least 16 bytes",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in:\n{said}");
    }

    let printed = Command::new(example())
        .args(["--print-config"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GENRO_ASGI_SERVER_PORT", "9123")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.contains("port = 9123"), "{text}");
    assert!(text.contains("# GENRO_ASGI_SERVER_PORT"), "{text}");
    assert!(
        !text.contains("example-secret-key-not-for-production"),
        "{text}"
    );
    assert!(text.contains("secret_key = ********"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_logs_ids_to_its_file_and_drains_on_sigterm() {
    use futures_util::StreamExt;
    let mut server = start("serve", &[("shutdown", "drain_timeout", "3s")]);
    let (status, headers, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-request-id"));
    let (status, headers, body) = get(&server.url("/panic")).await;
    assert_eq!(status, 500);
    let error_id = headers["x-error-id"].to_str().unwrap().to_owned();
    assert!(body.contains(&error_id));
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    let log = server.wait_for_log(&format!("error_id={error_id}"));
    // The error id is the request id's tail: the line that names it as `error_id`.
    let line = log
        .lines()
        .find(|l| l.contains(&format!("error_id={error_id}")))
        .unwrap();
    assert!(line.contains(" - ERROR - request failed"), "{line}");
    // The panic is that one line, in the log's format: its message, where it happened, and the
    // request's ids (from the span), each once.
    assert!(line.contains("examples/server.rs:"), "{line}");
    assert!(line.contains("location="), "{line}");
    assert!(
        !log.contains("panicked: "),
        "the panic was logged twice:\n{log}"
    );
    assert_eq!(line.matches("request_id=").count(), 1, "{line}");
    assert_eq!(line.matches("method=").count(), 1, "{line}");
    assert_eq!(line.matches("path=").count(), 1, "{line}");
    assert!(line.contains(&format!("request_id={request_id}")), "{line}");
    let (_, _, metrics) = get(&server.url("/metrics")).await;
    assert!(
        metrics.contains(r#"errors_total{kind="panic",type="panic"} 1"#),
        "{metrics}"
    );

    // A WebSocket open when the drain begins is closed with 1001, and a slow request finishes.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.port()))
            .await
            .unwrap();
    let slow = tokio::spawn({
        let url = server.url("/slow?ms=1000");
        async move { get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    let close = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("a close frame in time")
        .unwrap()
        .unwrap();
    match close {
        tokio_tungstenite::tungstenite::Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slept 1000 ms\n"));
    let (status, took) = server.wait(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let log = server.log();
    assert!(log.contains("drain complete"), "{log}");
    assert!(log.contains("on_shutdown: the drain is over"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_log_level_and_watchdog_and_refuses_a_broken_file() {
    let mut server = start(
        "reload",
        &[
            ("logging", "level", "WARNING"),
            ("watchdog", "interval", "100ms"),
            ("watchdog", "timeout", "60s"),
            ("watchdog", "critical", "120s"),
        ],
    );
    // At WARNING, a request's INFO lines are not written ...
    get(&server.url("/")).await;
    let config_path = server.log_path().parent().unwrap().join("server.ini");
    let original = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        !server.log().contains(" - INFO - "),
        "INFO was written at WARNING"
    );

    // ... a broken file is refused and the server keeps serving ...
    std::fs::write(&config_path, "[server]\nport = nope\n").unwrap();
    server.signal("HUP");
    let log = server.wait_for_log("new configuration refused");
    assert!(log.contains("server.port"), "{log}");
    assert_eq!(get(&server.url("/")).await.0, 200);

    // ... and a good one lowers the level and the watchdog's timeout, live.
    let lowered = original
        .replace("level = WARNING", "level = INFO")
        .replace("timeout = 60s", "timeout = 300ms");
    std::fs::write(&config_path, lowered).unwrap();
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    let (status, _, _) = get(&server.url("/slow?ms=1200")).await;
    assert_eq!(status, 200);
    let log = server.wait_for_log("request is slow");
    let slow = log.lines().find(|l| l.contains("request is slow")).unwrap();
    assert!(slow.contains("/slow"), "{slow}");
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());
}

/// The certificate a TLS server presents to a new connection.
async fn presented_certificate(
    port: u16,
    root: &[rustls::pki_types::CertificateDer<'static>],
) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in root {
        roots.add(cert.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_for_new_connections() {
    let dir = temp_dir("tls-reload-certs");
    let issue = |dir: &Path| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        cert.cert.der().clone()
    };
    let first = issue(&dir);
    let certfile = dir.join("cert.pem").display().to_string();
    let keyfile = dir.join("key.pem").display().to_string();
    let mut server = start(
        "tls-reload",
        &[
            ("ssl", "enabled", "true"),
            ("ssl", "certfile", &certfile),
            ("ssl", "keyfile", &keyfile),
        ],
    );
    let roots = [first.clone()];
    assert_eq!(
        presented_certificate(server.port(), &roots).await,
        first.to_vec()
    );
    let second = issue(&dir);
    server.signal("HUP");
    server.wait_for_log("ssl certificates");
    let both = [first.clone(), second.clone()];
    assert_eq!(
        presented_certificate(server.port(), &both).await,
        second.to_vec()
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_jobs_run_in_workers_and_a_crashed_worker_is_replaced() {
    let mut server = start("jobs", &[]);
    let (status, _, body) = get(&server.url("/job/square?n=12")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "square(12) = 144\n")
    );
    let (status, _, body) = get(&server.url("/job/crash")).await;
    assert_eq!(status.as_u16(), 502, "{body}");
    assert!(body.contains("error_id"), "{body}");
    // The pool replaced the worker: the next jobs still run.
    for n in [2, 3, 4] {
        let (status, _, body) = get(&server.url(&format!("/job/square?n={n}"))).await;
        assert_eq!(
            (status.as_u16(), body),
            (200, format!("square({n}) = {}\n", n * n))
        );
    }
    let log = server.wait_for_log("process worker replaced");
    assert!(log.contains("the worker exited"), "{log}");
    let (status, _, _) = get(&server.url("/job/nope")).await;
    assert_eq!(status.as_u16(), 404);
    // The thread pool too.
    let (status, _, body) = get(&server.url("/blocking?ms=50")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "blocked 50 ms on the thread pool\n")
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_running_jobs_and_refuses_new_ones() {
    let mut server = start("jobs-drain", &[("shutdown", "drain_timeout", "5s")]);
    let job = tokio::spawn({
        let url = server.url("/job/sleep?n=1000");
        async move { get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    let (status, _, body) = job.await.unwrap();
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "sleep(1000) = 1000\n")
    );
    let (exit, took) = server.wait(Duration::from_secs(6));
    assert!(exit.success());
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// The bounded drain with everything open at once: ten 2 s requests, an idle keep-alive
/// connection, a silent TCP connection, a WebSocket and a running executor job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_everything_within_the_timeout() {
    use futures_util::StreamExt;
    let mut server = start("drain-all", &[("shutdown", "drain_timeout", "4s")]);
    let port = server.port();
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let url = server.url("/slow?ms=2000");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let keepalive = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    assert_eq!(
        keepalive
            .get(server.url("/").parse().unwrap())
            .await
            .unwrap()
            .status(),
        200
    );
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    let job = tokio::spawn({
        let url = server.url("/blocking?ms=1500");
        async move { get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    server.signal("TERM");
    // Readiness turns false at once, on a connection that was open before.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = keepalive
        .get(server.url("/health/ready").parse().unwrap())
        .await;
    if let Ok(res) = ready {
        assert_eq!(res.status(), 503);
    }
    // New connections are refused.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    match ws.next().await {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001);
        }
        other => panic!("expected close 1001, got {other:?}"),
    }
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "slept 2000 ms\n"));
    }
    let (status, _, _) = job.await.unwrap();
    assert_eq!(status.as_u16(), 200);
    let (exit, _) = server.wait(Duration::from_secs(6));
    assert!(exit.success());
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

/// SIGTERM at random moments under load, 50 times: every response is complete, a connection
/// error or a 503 — never a truncated 200 — and the process always exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_never_truncates_a_response() {
    let mut rng = fastrand::Rng::with_seed(16);
    let mut complete = 0;
    let mut refused = 0;
    for round in 0..50 {
        let mut server = start(
            &format!("load-{round}"),
            &[("shutdown", "drain_timeout", "2s")],
        );
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let base = server.url("");
                tokio::spawn(async move {
                    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                    let mut outcomes = Vec::new();
                    for _ in 0..40 {
                        let (path, expected) = if i % 2 == 0 {
                            (
                                "/stream?chunks=4&delay_ms=5".to_owned(),
                                Some("chunk 0\nchunk 1\nchunk 2\nchunk 3\n".to_owned()),
                            )
                        } else {
                            ("/slow?ms=20".to_owned(), Some("slept 20 ms\n".to_owned()))
                        };
                        let Ok(res) = client.get(format!("{base}{path}").parse().unwrap()).await
                        else {
                            outcomes.push("refused");
                            break;
                        };
                        let status = res.status().as_u16();
                        match res.into_body().collect().await {
                            Ok(body) if status == 200 => {
                                let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                                assert_eq!(Some(body), expected, "a 200 with a wrong body");
                                outcomes.push("complete");
                            }
                            Ok(_) if status == 503 => outcomes.push("refused"),
                            Ok(_) => panic!("unexpected status {status}"),
                            Err(e) if status == 200 => panic!("a 200 whose body was cut: {e}"),
                            Err(_) => outcomes.push("refused"),
                        }
                    }
                    outcomes
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(20..200))).await;
        server.signal("TERM");
        for client in clients {
            for outcome in tokio::time::timeout(Duration::from_secs(10), client)
                .await
                .expect("no client hangs")
                .unwrap()
            {
                match outcome {
                    "complete" => complete += 1,
                    _ => refused += 1,
                }
            }
        }
        let (exit, _) = server.wait(Duration::from_secs(4));
        assert!(exit.success(), "round {round}: {exit:?}");
    }
    assert!(
        complete > 0 && refused > 0,
        "complete {complete}, refused {refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_cors_origins_live() {
    let mut server = start(
        "cors-reload",
        &[
            ("cors", "enabled", "true"),
            ("cors", "allow_origins", "https://first.example"),
        ],
    );
    let preflight = |origin: &'static str| {
        let url = server.url("/");
        async move {
            let req = http::Request::builder()
                .method("OPTIONS")
                .uri(url)
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            client
                .request(req)
                .await
                .unwrap()
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(
        preflight("https://first.example").await.as_deref(),
        Some("https://first.example")
    );
    assert_eq!(preflight("https://second.example").await, None);
    let path = server.log_path().parent().unwrap().join("server.ini");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "allow_origins = https://first.example",
        "allow_origins = https://second.example",
    );
    std::fs::write(&path, text).unwrap();
    server.signal("HUP");
    server.wait_for_log("cors.allow_origins");
    assert_eq!(
        preflight("https://second.example").await.as_deref(),
        Some("https://second.example")
    );
    assert_eq!(preflight("https://first.example").await, None);
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());
}

/// The status of a GET, or the client's error when the connection is closed under it.
async fn status_of(url: String) -> Result<http::StatusCode, hyper_util::client::legacy::Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    client.get(url.parse().unwrap()).await.map(|r| r.status())
}

/// A request that outlives the drain is aborted at the deadline: answered 503 in the error
/// format, and its id, path and age are logged; a second signal ends the drain at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_aborts_and_logs_and_a_second_signal_ends_it_at_once() {
    let mut server = start("forced", &[("shutdown", "drain_timeout", "1s")]);
    let stuck = tokio::spawn({
        let url = server.url("/slow?ms=30000");
        async move { get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    server.signal("TERM");
    let (exit, _) = server.wait(Duration::from_secs(4));
    assert!(exit.success());
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let (status, headers, body) = stuck.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let error_id = headers["x-error-id"].to_str().unwrap();
    assert!(
        body.contains(&format!("\"error_id\":\"{error_id}\"")),
        "{body}"
    );
    assert!(headers.contains_key("x-request-id"));
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("request aborted: it outlived the drain"))
        .unwrap_or_else(|| panic!("no abort line:\n{log}"));
    assert!(
        line.contains("path=/slow") && line.contains("request_id=") && line.contains("age_s="),
        "{line}"
    );
    // What it was waiting on (tests/taskdump.rs checks a real trace in a build with task dumps).
    assert!(line.contains("trace="), "{line}");
    assert!(log.contains("aborted=1"), "{log}");

    // With a long drain, a second signal does not wait for it.
    let mut server = start("second-signal", &[("shutdown", "drain_timeout", "30s")]);
    let _stuck = tokio::spawn(status_of(server.url("/slow?ms=30000")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    let (exit, _) = server.wait(Duration::from_secs(5));
    assert!(exit.success());
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert!(server.log().contains("second signal"), "{}", server.log());
}

// The remote debug console, as `examples/debug.ini` turns it on.

const DEBUG_SECRET: &str = "example-debug-secret-change-me";

/// The debug console's address, from the line the server logs when it starts it.
fn console_addr(server: &Server) -> String {
    const NEEDLE: &str = "debug console listening on http://";
    let log = server.wait_for_log(NEEDLE);
    let at = log.find(NEEDLE).unwrap() + NEEDLE.len();
    log[at..].split('/').next().unwrap().to_owned()
}

async fn login(addr: &str, secret: &str) -> Result<genro_debug::Client, genro_debug::ClientError> {
    genro_debug::Client::connect(addr, &genro_debug::Secret::new(secret)).await
}

async fn first_held(console: &mut genro_debug::Client) -> String {
    use genro_debug::protocol::{ClientMessage, ServerMessage};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let ServerMessage::HeldList { held } = console.call(&ClientMessage::Held).await.unwrap()
        {
            if let Some(h) = held.first() {
                return h.request.id.clone();
            }
        }
        assert!(Instant::now() < deadline, "nothing was held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_example_holds_a_panic_for_the_console_and_cancels_a_slow_request() {
    use genro_debug::protocol::{ClientMessage, ServerMessage};
    let server = start_from(
        "examples/debug.ini",
        "debug-session",
        &[("debug", "debug_port", "0")],
        &[("RUST_BACKTRACE", "1")],
    );
    let addr = console_addr(&server);
    let panic = spawn_get(server.url("/panic"));
    let slow = spawn_get(server.url("/slow?ms=60000"));
    let mut console = login(&addr, DEBUG_SECRET).await.unwrap();
    assert!(console.holding());
    let held = first_held(&mut console).await;
    let ServerMessage::Attached { held: report } = console
        .call(&ClientMessage::Attach { id: held.clone() })
        .await
        .unwrap()
    else {
        panic!("not attached")
    };
    assert_eq!(
        report.chain,
        vec!["this handler panics on purpose".to_owned()]
    );
    let backtrace = report.backtrace.expect("RUST_BACKTRACE=1: a backtrace");
    assert!(backtrace.contains("server::panic"), "{backtrace}");
    assert!(!panic.is_finished(), "held while the console looks");
    console
        .call(&ClientMessage::Continue { id: held.clone() })
        .await
        .unwrap();
    let (status, headers, _) = panic.await.unwrap();
    assert_eq!(status, 500);
    assert_eq!(headers["x-error-id"], held.as_str());

    let ServerMessage::Requests { requests } = console.call(&ClientMessage::Ls).await.unwrap()
    else {
        panic!()
    };
    let slow_id = requests
        .iter()
        .find(|r| r.target == "/slow")
        .expect("the slow request is listed")
        .id
        .clone();
    // What it waits on, as the doc comment shows: this build has no task dumps, so the answer
    // says how to get them (tests/taskdump.rs checks a real trace).
    let ServerMessage::Request { request } = console
        .call(&ClientMessage::Show {
            id: slow_id.clone(),
            trace: true,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let waiting = request.waiting_on.expect("--trace answers");
    assert!(
        waiting.trace.is_some()
            || waiting
                .unavailable
                .as_deref()
                .is_some_and(|w| w.contains("tokio_unstable")),
        "{waiting:?}"
    );
    console
        .call(&ClientMessage::Cancel {
            id: slow_id.clone(),
        })
        .await
        .unwrap();
    let (status, headers, body) = slow.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["x-error-id"], slow_id.as_str());
    server.wait_for_log("command: cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_secret_never_appears_in_logs_metrics_errors_or_printed_config() {
    const CANARY: &str = "CANARY-debug-9d8c7b6a5f4e3d2c";
    let server = start_from(
        "examples/debug.ini",
        "debug-canary",
        &[
            ("debug", "debug_port", "0"),
            ("debug", "hold_timeout", "100ms"),
            ("errors", "show_traceback", "true"),
        ],
        &[("GENRO_ASGI_DEBUG_SECRET", CANARY)],
    );
    let addr = console_addr(&server);
    let wrong = login(&addr, DEBUG_SECRET).await.unwrap_err();
    assert!(wrong.to_string().contains("wrong secret"), "{wrong}");
    let mut console = login(&addr, CANARY).await.unwrap();
    let (status, _, error_body) = get(&server.url("/panic")).await;
    assert_eq!(status, 500);
    let (_, _, metrics) = get(&server.url("/metrics")).await;
    assert!(metrics.contains("debug_logins_total"), "{metrics}");
    let ls = console
        .call(&genro_debug::protocol::ClientMessage::Ls)
        .await
        .unwrap();
    let config = server.log_path().parent().unwrap().join("server.ini");
    let printed = Command::new(example())
        .args(["--print-config", "--config"])
        .arg(&config)
        .env("GENRO_ASGI_DEBUG_SECRET", CANARY)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(printed.contains("secret = ********"), "{printed}");
    for (what, text) in [
        ("log", server.log()),
        ("/metrics", metrics),
        ("error body", error_body),
        ("--print-config", printed),
        ("console reply", format!("{ls:?}")),
    ] {
        assert!(!text.contains(CANARY), "the secret appears in the {what}");
        assert!(
            !text.contains("9d8c7b6a"),
            "part of the secret appears in the {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_allowlist_reloads_on_sighup_and_a_drain_releases_held_requests() {
    let mut server = start_from(
        "examples/debug.ini",
        "debug-reload",
        &[
            ("debug", "debug_port", "0"),
            ("debug", "allowed_ips", "10.0.0.0/8"),
            ("debug", "hold_timeout", "60s"),
        ],
        &[],
    );
    let addr = console_addr(&server);
    let refused = login(&addr, DEBUG_SECRET).await.unwrap_err();
    assert!(
        matches!(
            refused,
            genro_debug::ClientError::ClosedBeforeHandshake { .. }
        ),
        "{refused}"
    );
    let config = server.log_path().parent().unwrap().join("server.ini");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("allowed_ips = 10.0.0.0/8", "allowed_ips = 127.0.0.1");
    std::fs::write(&config, text).unwrap();
    server.signal("HUP");
    server.wait_for_log("debug.allowed_ips");
    let mut console = login(&addr, DEBUG_SECRET)
        .await
        .expect("allowed after the reload");

    let panic = spawn_get(server.url("/panic"));
    first_held(&mut console).await;
    let stopping = Instant::now();
    server.signal("TERM");
    let (status, headers, _) = tokio::time::timeout(Duration::from_secs(5), panic)
        .await
        .expect("the drain released the held request")
        .unwrap();
    assert_eq!(status, 500);
    assert!(headers.contains_key("x-error-id"));
    let (exit, _) = server.wait(Duration::from_secs(15));
    assert!(exit.success());
    assert!(stopping.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_console_is_off_by_default() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port().to_string()
    };
    let server = start("debug-off", &[("debug", "debug_port", &port)]);
    let (status, _, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    let refused = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(!server.log().contains("debug console"));
}
