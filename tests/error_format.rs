//! One error format for every error, over a real socket against the example server: the
//! framework's own answers (no route, wrong method, an extractor's rejection, the body limit
//! both ways, a drained request) carry an error id, a request id and a trace id like a handler's
//! error does; the application's own bodies pass untouched; panics are one line in the log's
//! format; W3C `traceparent` is continued, refused when the spec refuses it, and reaches the
//! error body, the log and the webhook.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

mod common;

use std::time::Duration;

use common::example::{start, start_from, Server};
use genro_test_support::{http::get, wait_for};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One raw HTTP/1.1 exchange (the request written as given, the connection closed after it):
/// the status, the headers and the body.
async fn raw(server: &Server, request: &[u8]) -> (u16, http::HeaderMap, String) {
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .nth(1)
        .unwrap_or("0");
    let mut headers = http::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(": ") {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
    }
    (status.parse().unwrap_or(0), headers, body.to_owned())
}

/// A request with `method`, extra header lines and no body.
async fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, http::HeaderMap, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{headers}\r\n"
    );
    raw(server, request.as_bytes()).await
}

/// The problem+json body of an error answer, checked for what every one carries: the error id
/// of `x-error-id`, a request id, and a 32-hex trace id.
fn problem(status: u16, headers: &http::HeaderMap, body: &str, expected: u16) -> Value {
    assert_eq!(status, expected, "{headers:?}\n{body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
    let doc: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(doc["status"], expected);
    assert_eq!(
        doc["error_id"],
        headers["x-error-id"].to_str().unwrap(),
        "{body}"
    );
    let trace = doc["trace_id"].as_str().expect("a trace id");
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_the_framework_makes_answers_in_one_format() {
    let mut server = start("error-format", &[("limits", "body_limit", "1MiB")]);

    // No route: 404.
    let (status, headers, body) = send(&server, "GET", "/nope", "").await;
    let doc = problem(status, &headers, &body, 404);
    assert_eq!(doc["title"], "Not Found");

    // The route has only GET: 405, its allow header kept.
    let (status, headers, body) = send(&server, "DELETE", "/", "").await;
    problem(status, &headers, &body, 405);
    assert!(
        headers["allow"].to_str().unwrap().contains("GET"),
        "{headers:?}"
    );

    // axum's query extractor rejects: 400, its own text as the detail.
    let (status, headers, body) = send(&server, "GET", "/slow?ms=abc", "").await;
    let doc = problem(status, &headers, &body, 400);
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Failed to deserialize query string"),
        "{detail}"
    );

    // Over the body limit by Content-Length: refused before the handler, 413.
    let (status, headers, body) = raw(
        &server,
        b"POST /upload HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 2000000\r\n\r\n",
    )
    .await;
    let doc = problem(status, &headers, &body, 413);
    assert!(
        doc["detail"].as_str().unwrap().contains("over the limit"),
        "{body}"
    );

    // Over the limit mid-stream (chunked, no length): cut while the handler reads, 413.
    let mut chunked = b"POST /upload HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b'x'; 64 << 10];
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, headers, body) = raw(&server, &chunked).await;
    let doc = problem(status, &headers, &body, 413);
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("length limit exceeded"),
        "{body}"
    );

    // A panic, as before.
    let (status, headers, body) = send(&server, "GET", "/panic", "").await;
    problem(status, &headers, &body, 500);

    // The same 404 as a page and as text, by Accept.
    let (status, headers, body) = send(&server, "GET", "/nope", "accept: text/html\r\n").await;
    assert_eq!(status, 404);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        body.contains(headers["x-error-id"].to_str().unwrap()),
        "{body}"
    );
    let (_, headers, body) = send(&server, "GET", "/nope", "accept: text/plain\r\n").await;
    assert!(body.starts_with("404 Not Found\nerror id: "), "{body}");
    assert!(
        body.contains(headers["x-error-id"].to_str().unwrap()),
        "{body}"
    );

    // The application's own JSON 404 passes byte for byte, with no error id.
    let (status, headers, body) = send(&server, "GET", "/users/7", "").await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"message":"no user 7"}"#);
    assert!(!headers.contains_key("x-error-id"), "{headers:?}");

    // Each counted once, by a bounded type; the client errors logged at WARNING.
    let (_, _, metrics) = get(&server.url("/metrics")).await;
    for series in [
        r#"errors_total{kind="status",type="not_found"} 3"#,
        r#"errors_total{kind="status",type="method_not_allowed"} 1"#,
        r#"errors_total{kind="status",type="bad_request"} 1"#,
        r#"errors_total{kind="error",type="body_limit"} 1"#,
        r#"errors_total{kind="status",type="body_limit"} 1"#,
        r#"errors_total{kind="panic",type="panic"} 1"#,
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
    // Logged by a writer thread of its own: waited for, not assumed.
    let log = server.wait_for_log("status=404");
    let not_found = log
        .lines()
        .find(|l| l.contains("request failed") && l.contains("status=404"))
        .unwrap_or_else(|| panic!("no 404 line:\n{log}"));
    assert!(not_found.contains(" - WARNING - "), "{not_found}");
    assert!(
        not_found.contains("error_type=\"not_found\"")
            || not_found.contains("error_type=not_found"),
        "{not_found}"
    );
    assert!(
        !log.contains("no user 7"),
        "the app's own 404 is not an error of the framework"
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());
}

/// With `format = json`, every line the server writes parses as one JSON object, and a panic is
/// one event: its message, where it happened, its backtrace, the error id and the request's ids
/// (from the span, once), and nothing on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_every_line_parses_and_a_panic_is_one_event() {
    let mut server = start_from(
        "examples/server.ini",
        "json-log",
        &[("logging", "format", "json")],
        &[("RUST_BACKTRACE", "1")],
    );
    send(&server, "GET", "/", "").await;
    send(&server, "GET", "/nope", "").await;
    let (status, headers, _) = send(
        &server,
        "GET",
        "/panic",
        &format!("traceparent: {TRACEPARENT}\r\n"),
    )
    .await;
    assert_eq!(status, 500);
    server.wait_for_log("request failed");
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());

    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() > 5, "{log}");
    let panics: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["kind"] == "panic")
        .collect();
    assert_eq!(panics.len(), 1, "{log}");
    let event = panics[0];
    let fields = &event["fields"];
    assert_eq!(event["level"], "ERROR");
    assert!(
        fields["error"]
            .as_str()
            .unwrap()
            .contains("panics on purpose"),
        "{event}"
    );
    assert!(
        fields["location"]
            .as_str()
            .unwrap()
            .starts_with("examples/server.rs:"),
        "{event}"
    );
    // The backtrace's frames from the panic to the error layer, the handler's first and
    // marked: not the panic machinery, nor the runtime's frames out of the layer.
    let backtrace = fields["backtrace"].as_str().unwrap();
    let mut frames = backtrace.lines();
    assert!(
        frames
            .next()
            .unwrap()
            .contains("frames, from the panic to the error layer"),
        "{backtrace}"
    );
    let first = frames.next().unwrap();
    assert!(
        first.starts_with("* ") && first.contains("server::panic"),
        "{backtrace}"
    );
    for machinery in ["std::panicking::", "tokio::runtime::"] {
        assert!(!backtrace.contains(machinery), "{machinery}: {backtrace}");
    }
    assert_eq!(fields["error_id"], headers["x-error-id"].to_str().unwrap());
    let span = &event["span"];
    assert_eq!(
        span["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(span["trace_id"], TRACE);
    assert_eq!(span["path"], "/panic");
    // Each field once: what the span has is not repeated in the event.
    for field in ["request_id", "method", "path", "trace_id"] {
        assert!(fields.get(field).is_none(), "{field} twice: {event}");
    }
    assert_eq!(log.matches("panics on purpose").count(), 1, "{log}");
    assert!(
        !server.stderr().contains("panicked"),
        "the default panic output was written too:\n{}",
        server.stderr()
    );
}

/// W3C trace context end to end: a valid `traceparent` is continued (its trace id in the error
/// body, the log line and the webhook's payload, and a child `traceparent` on the webhook's
/// call); each way the spec refuses one is refused and counted, and the request starts a trace
/// of its own, as one without the header does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_continued_or_refused_and_reaches_body_log_and_webhook() {
    let (hook, received) = common::webhook().await;
    let url = format!("http://{hook}/hook");
    let mut server = start(
        "traceparent",
        &[
            ("errors", "notify_critical", "true"),
            ("errors", "notify_webhook", url.as_str()),
        ],
    );
    let with = |traceparent: &str| format!("traceparent: {traceparent}\r\ntracestate: genro=1\r\n");

    let (status, headers, body) = send(&server, "GET", "/nope", &with(TRACEPARENT)).await;
    assert_eq!(problem(status, &headers, &body, 404)["trace_id"], TRACE);

    let refused = [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ];
    for bad in refused {
        let (status, headers, body) = send(&server, "GET", "/nope", &with(bad)).await;
        let doc = problem(status, &headers, &body, 404);
        assert_ne!(doc["trace_id"], TRACE, "{bad} was taken");
        // A trace started here: its id is the request id's sixteen bytes.
        let request_id = headers["x-request-id"].to_str().unwrap().replace('-', "");
        assert_eq!(doc["trace_id"], request_id, "{bad}");
    }
    let (status, headers, body) = send(&server, "GET", "/nope", "").await;
    let doc = problem(status, &headers, &body, 404);
    assert_eq!(
        doc["trace_id"],
        headers["x-request-id"].to_str().unwrap().replace('-', "")
    );
    let (_, _, metrics) = get(&server.url("/metrics")).await;
    assert!(
        metrics.contains(&format!("traceparent_invalid_total {}", refused.len())),
        "{metrics}"
    );

    // A panic in the client's trace: the body, the log line and the webhook carry its trace id.
    let (status, headers, body) = send(&server, "GET", "/panic", &with(TRACEPARENT)).await;
    assert_eq!(problem(status, &headers, &body, 500)["trace_id"], TRACE);
    let error_id = headers["x-error-id"].to_str().unwrap().to_owned();
    let log = server.wait_for_log(&format!("error_id={error_id}"));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("error_id={error_id}")))
        .unwrap();
    assert!(line.contains(&format!("trace_id={TRACE}")), "{line}");
    let note = {
        let mut found = None;
        for _ in 0..200 {
            found = received
                .lock()
                .unwrap()
                .iter()
                .find(|n| n["kind"] == "critical_error")
                .cloned();
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        found.expect("the critical error reached the webhook")
    };
    assert_eq!(note["request"]["trace_id"], TRACE, "{note}");
    let sent = note["received_traceparent"]
        .as_str()
        .expect("a traceparent on the call");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE, "01"),
        "{sent}"
    );
    // Its parent is the request's own span, not the client's.
    assert_ne!(parts[2], "00f067aa0ba902b7", "{sent}");
    assert_eq!(parts[2].len(), 16, "{sent}");
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(5)).0.success());
}

/// A client sending 404s as fast as it can does not write a log line per request: past
/// `[errors] client_error_lines_per_second` they are summed up, and every one is still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_client_errors_is_summed_up_in_the_log_and_counted_in_full() {
    let server = start(
        "client-error-flood",
        &[
            ("errors", "client_error_lines_per_second", "2"),
            ("executors", "processes", "0"),
        ],
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let url: http::Uri = server.url("/no-such-page").parse().unwrap();
    // Over more than one second, so that the flood runs across the end of one: a summary may
    // then be written while a request is being answered.
    let began = std::time::Instant::now();
    let mut sent = 0u64;
    while sent < 200 || began.elapsed() < Duration::from_millis(1500) {
        let res = client.get(url.clone()).await.unwrap();
        assert_eq!(res.status(), 404);
        sent += 1;
    }
    // Every 404 is written or summed up, the last second's summary once that second ends.
    let tally = |log: &str| {
        let written = log
            .lines()
            .filter(|l| l.contains("request failed") && l.contains("status=404"))
            .filter(|l| !l.contains("more like this"))
            .count() as u64;
        let summed: u64 = log
            .lines()
            .filter_map(|l| l.split("suppressed=").nth(1))
            .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        (written, summed)
    };
    let (written, summed) = wait_for("every client error written or summed up", async || {
        let (written, summed) = tally(&server.log());
        (written + summed >= sent).then_some((written, summed))
    })
    .await;
    assert_eq!(
        written + summed,
        sent,
        "{written} written, {summed} summed up"
    );
    // A summary is of no one request: it carries none's ids.
    let log = server.log();
    for summary in log.lines().filter(|l| l.contains("more like this")) {
        assert!(
            summary.contains("suppressed=") && !summary.contains("request_id="),
            "{summary}"
        );
    }
    // Two lines a second: a handful, however long the flood took here.
    assert!(
        written <= 20 && summed >= sent - 20,
        "{written} written, {summed} summed up"
    );
    let (_, _, metrics) = get(&server.url("/metrics")).await;
    assert!(
        metrics.contains(&format!(
            r#"errors_total{{kind="status",type="not_found"}} {sent}"#
        )),
        "{metrics}"
    );
}
