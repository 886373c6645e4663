//! `ErrorLayer::framework_errors`: the framework's own error answers take the error path, the
//! application's own bodies never do, and a layer without the setting changes nothing.

use axum::{
    body::Body,
    extract::Query,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use genro_errors::ErrorLayer;
use genro_test_support::http::{call, Reply};
use genro_test_support::LogBuffer;
use http::{header, StatusCode};
use prometheus_client::{encoding::text::encode, registry::Registry};

#[derive(serde::Deserialize)]
struct Page {
    #[allow(dead_code)]
    n: u32,
}

fn app(layer: ErrorLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/query", get(|_: Query<Page>| async { "ok" }))
        .route(
            "/own-json-404",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"message":"no such order"}"#,
                )
            }),
        )
        .route(
            "/own-text-400",
            get(|| async { (StatusCode::BAD_REQUEST, "the date must be in the future") }),
        )
        .route(
            "/bare-401",
            get(|| async {
                Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(header::WWW_AUTHENTICATE, "Bearer")
                    .body(Body::empty())
                    .unwrap()
            }),
        )
        .route(
            "/bare-503",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "7")],
                )
                    .into_response()
            }),
        )
        .layer(layer)
}

/// One request through `app`.
async fn send(app: &Router, method: &str, path: &str) -> Reply {
    call::<_, Body, _>(app.clone(), method, path).await
}

fn problem(answer: &Reply) -> serde_json::Value {
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{}",
        answer.body
    );
    let doc: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        doc["error_id"],
        answer.headers["x-error-id"].to_str().unwrap()
    );
    assert_eq!(doc["status"], answer.status.as_u16());
    doc
}

#[tokio::test]
async fn the_frameworks_answers_take_the_error_path() {
    let _ = LogBuffer::global();
    let layer = ErrorLayer::new().framework_errors(true);
    let mut registry = Registry::default();
    layer.register_metrics(&mut registry);
    let app = app(layer);

    let answer = send(&app, "GET", "/nope").await;
    assert_eq!(answer.status, 404);
    assert_eq!(problem(&answer)["title"], "Not Found");

    let answer = send(&app, "POST", "/").await;
    assert_eq!(answer.status, 405);
    problem(&answer);
    assert_eq!(answer.headers[header::ALLOW], "GET,HEAD");

    let answer = send(&app, "GET", "/query?n=x").await;
    assert_eq!(answer.status, 400);
    let doc = problem(&answer);
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .starts_with("Failed to deserialize query string"),
        "{doc}"
    );

    // A bodiless status a handler returned: its headers are kept.
    let answer = send(&app, "GET", "/bare-401").await;
    assert_eq!(answer.status, 401);
    problem(&answer);
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
    let answer = send(&app, "GET", "/bare-503").await;
    assert_eq!(answer.status, 503);
    problem(&answer);
    assert_eq!(answer.headers[header::RETRY_AFTER], "7");

    // The application's own bodies, JSON or text, pass byte for byte.
    let answer = send(&app, "GET", "/own-json-404").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::NOT_FOUND, r#"{"message":"no such order"}"#)
    );
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert!(!answer.headers.contains_key("x-error-id"));
    let answer = send(&app, "GET", "/own-text-400").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::BAD_REQUEST, "the date must be in the future")
    );
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert!(!answer.headers.contains_key("x-error-id"));

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for series in [
        r#"errors_total{kind="status",type="not_found"} 1"#,
        r#"errors_total{kind="status",type="method_not_allowed"} 1"#,
        r#"errors_total{kind="status",type="bad_request"} 1"#,
        r#"errors_total{kind="status",type="unauthorized"} 1"#,
        r#"errors_total{kind="status",type="unavailable"} 1"#,
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
    assert!(!text.contains("client_error"), "{text}");
}

#[tokio::test]
async fn without_the_setting_nothing_the_application_answered_changes() {
    let _ = LogBuffer::global();
    let app = app(ErrorLayer::new());
    let answer = send(&app, "GET", "/nope").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::NOT_FOUND, "")
    );
    assert!(!answer.headers.contains_key("x-error-id"));
    let answer = send(&app, "GET", "/query?n=x").await;
    assert_eq!(answer.status, 400);
    assert!(answer
        .body
        .starts_with("Failed to deserialize query string"));
    assert!(!answer.headers.contains_key("x-error-id"));
}

#[tokio::test]
async fn client_errors_are_logged_at_the_chosen_level_or_not_at_all() {
    let logs = LogBuffer::global();
    let quiet = app(ErrorLayer::new()
        .framework_errors(true)
        .client_error_level(None));
    let answer = send(&quiet, "GET", "/nope").await;
    let id = answer.headers["x-error-id"].to_str().unwrap().to_owned();
    let info = app(ErrorLayer::new()
        .framework_errors(true)
        .client_error_level(Some(tracing::Level::INFO)));
    let answer = send(&info, "GET", "/nope").await;
    let logged = answer.headers["x-error-id"].to_str().unwrap().to_owned();
    let out = logs.contents();
    assert!(!out.contains(&id), "logged although off:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&logged))
        .unwrap_or_else(|| panic!("not logged:\n{out}"));
    assert!(line.contains("INFO"), "{line}");
    // An ERROR asked for a client error is taken as WARN.
    let loud = app(ErrorLayer::new()
        .framework_errors(true)
        .client_error_level(Some(tracing::Level::ERROR)));
    let answer = send(&loud, "GET", "/nope").await;
    let id = answer.headers["x-error-id"].to_str().unwrap().to_owned();
    let out = logs.contents();
    let line = out.lines().find(|l| l.contains(&id)).unwrap();
    assert!(line.contains("WARN"), "{line}");
}

/// The hook à la carte users install: a panic outside any request is one event in the log, and
/// a panic an error layer catches is that layer's event alone.
#[tokio::test]
async fn the_panic_hook_logs_each_panic_once() {
    let logs = LogBuffer::global();
    genro_errors::install_panic_hook();
    let joined = std::thread::Builder::new()
        .name("background-worker".into())
        .spawn(|| panic!("a background thread gave up"))
        .unwrap()
        .join();
    assert!(joined.is_err());
    let out = logs.contents();
    let line = out
        .lines()
        .find(|l| l.contains("a background thread gave up"))
        .unwrap_or_else(|| panic!("not logged:\n{out}"));
    assert!(line.contains("panicked: "), "{line}");
    assert!(line.contains("location="), "{line}");
    assert!(line.contains("background-worker"), "{line}");

    let app = Router::new()
        .route(
            "/",
            get(|| async {
                panic!("a handler gave up");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .layer(ErrorLayer::new());
    let answer = send(&app, "GET", "/").await;
    assert_eq!(answer.status, 500);
    let out = logs.contents();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("a handler gave up"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("request failed"), "{}", lines[0]);
    assert!(lines[0].contains("framework.rs:"), "{}", lines[0]);
}
