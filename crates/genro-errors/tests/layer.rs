//! ErrorLayer at the service level under axum: handlers by type, defaults, panics, negotiation,
//! show_traceback, observers, notifiers, metrics, the log line, and panics on the error path.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Body, routing::get, Router};
use genro_envelope::EnvelopeLayer;
use genro_errors::{Error, ErrorKind, ErrorLayer, ErrorReport, Problem};
use genro_test_support::{wait_for, LogBuffer};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{ServiceBuilder, ServiceExt};

use genro_test_support::errors::{Invalid, NotFound, RateLimited, Wrapped};

#[derive(Debug)]
struct Secret;
impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("db password=hunter2 at /srv/app/config.ini")
    }
}
impl std::error::Error for Secret {}

fn layer() -> ErrorLayer {
    ErrorLayer::new()
        .handler_response("rate_limited", |_: &RateLimited, envelope| {
            http::Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("content-type", "application/vnd.acme+json")
                .body(bytes::Bytes::from(format!(
                    r#"{{"wait":3,"path":"{}"}}"#,
                    envelope.path()
                )))
                .unwrap()
        })
        .handler("not_found", |e: &NotFound, _| {
            Problem::new(StatusCode::NOT_FOUND)
                .title("Order not found")
                .detail(e.to_string())
        })
        .handler("invalid", |e: &Invalid, _| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
                .type_uri("https://errors.example.com/invalid")
                .detail(e.to_string())
        })
}

fn app(layer: ErrorLayer) -> Router {
    Router::new()
        .route(
            "/missing",
            get(|| async { Err::<String, Error>(NotFound(7).into()) }),
        )
        .route(
            "/invalid",
            get(|| async { Err::<String, Error>(Invalid("email").into()) }),
        )
        .route(
            "/wrapped",
            get(|| async { Err::<String, Error>(Wrapped(NotFound(9)).into()) }),
        )
        .route(
            "/secret",
            get(|| async { Err::<String, Error>(Secret.into()) }),
        )
        .route(
            "/teapot",
            get(|| async {
                Err::<String, Error>(
                    Error::msg("short and stout").with_status(StatusCode::IM_A_TEAPOT),
                )
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("boom at /srv/app/src/handler.rs");
                }
                "unreachable"
            }),
        )
        .route(
            "/plain500",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "handled by the app") }),
        )
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/limited",
            get(|| async { Err::<String, Error>(RateLimited.into()) }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(layer),
        )
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn get_with(app: &Router, path: &str, accept: Option<&str>) -> Answer {
    let mut req = Request::get(path);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn json(body: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(body)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn registered_types_map_to_their_status_and_body() {
    logs();
    let app = app(layer());
    let a = get_with(&app, "/missing", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    let doc = json(&a.body);
    assert_eq!(doc["title"], "Order not found");
    assert_eq!(doc["status"], 404);
    assert_eq!(
        doc["detail"], "order 7 does not exist",
        "4xx detail from the handler is shown"
    );
    assert_eq!(doc["error_id"], a.headers["x-error-id"].to_str().unwrap());
    assert!(!doc.contains_key("type"), "about:blank is implied");

    let a = get_with(&app, "/invalid", None).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(&a.body)["type"], "https://errors.example.com/invalid");

    // Found through the source chain.
    let a = get_with(&app, "/wrapped", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(json(&a.body)["detail"], "order 9 does not exist");

    // A handler that builds its own response.
    let a = get_with(&app, "/limited", None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers["content-type"], "application/vnd.acme+json");
    assert_eq!(a.body, r#"{"wait":3,"path":"/limited"}"#);
    assert_eq!(a.headers["x-error-id"].len(), 8);

    // An unregistered error keeps the status it was given.
    let a = get_with(&app, "/teapot", None).await;
    assert_eq!(a.status, StatusCode::IM_A_TEAPOT);
}

#[tokio::test]
async fn unregistered_errors_and_panics_are_opaque_500s_unless_traceback_is_on() {
    logs();
    let app = app(layer());
    for path in ["/secret", "/panic"] {
        let a = get_with(&app, path, None).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        let doc = json(&a.body);
        let keys: Vec<_> = doc.keys().map(String::as_str).collect();
        assert_eq!(keys, ["error_id", "status", "title"], "{path}: {}", a.body);
        assert_eq!(doc["title"], "Internal Server Error");
        assert_eq!(doc["error_id"].as_str().unwrap().len(), 8);
        for leak in ["hunter2", "/srv/app", "Secret", "boom"] {
            assert!(!a.body.contains(leak), "{path} leaked {leak}: {}", a.body);
        }
    }

    let verbose = ErrorLayer::new().show_traceback(true);
    let app = self::app(verbose);
    let a = get_with(&app, "/secret", None).await;
    let doc = json(&a.body);
    assert!(
        doc["detail"].as_str().unwrap().contains("hunter2"),
        "{}",
        a.body
    );
    assert!(doc.contains_key("traceback"));
    let a = get_with(&app, "/panic", None).await;
    assert!(
        json(&a.body)["traceback"]
            .as_str()
            .unwrap()
            .contains("panic: boom"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn traceback_can_be_switched_while_running() {
    logs();
    let switch = genro_errors::TracebackSwitch::new(false);
    let app = app(ErrorLayer::new().traceback_switch(&switch));
    assert!(!get_with(&app, "/secret", None)
        .await
        .body
        .contains("hunter2"));
    switch.set(true);
    assert!(get_with(&app, "/secret", None)
        .await
        .body
        .contains("hunter2"));
    switch.set(false);
    assert!(!get_with(&app, "/secret", None)
        .await
        .body
        .contains("hunter2"));
}

#[tokio::test]
async fn html_and_text_negotiation() {
    logs();
    let app = app(layer());
    let a = get_with(
        &app,
        "/missing",
        Some("text/html,application/xhtml+xml,*/*;q=0.8"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.headers["content-type"], "text/html; charset=utf-8");
    let id = a.headers["x-error-id"].to_str().unwrap().to_owned();
    assert!(
        a.body.starts_with("<!doctype html>") && a.body.contains(&id),
        "{}",
        a.body
    );

    let a = get_with(&app, "/panic", Some("text/plain")).await;
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    assert!(
        a.body.starts_with("500 Internal Server Error\nerror id: "),
        "{}",
        a.body
    );
    assert!(!a.body.contains("boom"));
}

#[tokio::test]
async fn service_errors_get_default_statuses() {
    logs();
    use tower::{load_shed::LoadShedLayer, timeout::TimeoutLayer};

    let slow = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(ErrorLayer::new())
                .layer(TimeoutLayer::new(Duration::from_millis(20))),
        );
    let a = get_with(&slow, "/slow", None).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);

    // A service that is never ready, behind load shedding: 503 with Retry-After.
    let shed = ServiceBuilder::new()
        .layer(ErrorLayer::new())
        .layer(LoadShedLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(0))
        .service(tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        }));
    let res = shed
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
}

#[tokio::test]
async fn metrics_count_by_kind_and_bounded_type() {
    logs();
    let layer = layer();
    let mut registry = Registry::default();
    layer.register_metrics(&mut registry);
    let app = app(layer);
    for path in [
        "/missing",
        "/missing",
        "/secret",
        "/panic",
        "/plain500",
        "/ok",
    ] {
        get_with(&app, path, None).await;
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    // The label registered with the handler: stable across compilers and refactors.
    assert!(
        text.contains(r#"errors_total{kind="error",type="not_found"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"errors_total{kind="error",type="other"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"errors_total{kind="panic",type="panic"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"errors_total{kind="status",type="other"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn observers_see_each_error_and_cannot_hold_the_response_past_their_limit() {
    logs();
    type Seen = (ErrorKind, &'static str, bool, String);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let layer = layer()
        .observer({
            let seen = seen.clone();
            move |r: Arc<ErrorReport>| {
                seen.lock().unwrap().push((
                    r.kind,
                    r.error_type,
                    r.critical,
                    r.envelope.short_id().to_string(),
                ));
                async {}
            }
        })
        .observer(|_r: Arc<ErrorReport>| async {
            tokio::time::sleep(Duration::from_secs(60)).await
        })
        .observer_timeout(Duration::from_millis(100));
    let app = app(layer);
    let started = Instant::now();
    let a = get_with(&app, "/panic", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the observer timeout"
    );
    let b = get_with(&app, "/missing", None).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].0, seen[0].1, seen[0].2),
        (ErrorKind::Panic, "panic", true)
    );
    assert_eq!(seen[0].3, a.headers["x-error-id"].to_str().unwrap());
    assert!(!seen[1].2, "a handled 404 is not critical");
    assert_eq!(seen[1].3, b.headers["x-error-id"].to_str().unwrap());
}

/// One global subscriber for this test binary, installed by every test before it runs: with a
/// single dispatcher, no event site's cached interest can race with a subscriber being set.
fn logs() -> &'static LogBuffer {
    LogBuffer::global()
}

#[tokio::test]
async fn the_error_id_in_the_log_is_the_one_in_the_header() {
    let logs = logs();
    let app = app(layer());
    let secret = get_with(&app, "/secret", None).await;
    let panic = get_with(&app, "/panic", None).await;
    let out = logs.contents();
    for (answer, needle) in [(&secret, "hunter2"), (&panic, "boom")] {
        let id = answer.headers["x-error-id"].to_str().unwrap();
        // Other tests log too; this request's line is found by its id, which is unique.
        let lines: Vec<_> = out
            .lines()
            .filter(|l| l.contains(&format!("error_id={id}")))
            .collect();
        assert_eq!(lines.len(), 1, "one event per error:\n{out}");
        let line = lines[0];
        assert!(
            line.contains("ERROR") && line.contains("request failed"),
            "{line}"
        );
        assert!(
            line.contains(needle),
            "the server log has the full error: {line}"
        );
        assert!(!answer.body.contains(needle), "but the client does not");
    }
}

#[tokio::test]
async fn a_setting_on_a_clone_leaves_the_original_alone() {
    logs();
    let base = ErrorLayer::new();
    let verbose = base.clone().show_traceback(true);
    let quiet = app(base);
    let loud = app(verbose);
    assert!(get_with(&loud, "/secret", None)
        .await
        .body
        .contains("hunter2"));
    assert!(
        !get_with(&quiet, "/secret", None)
            .await
            .body
            .contains("hunter2"),
        "show_traceback on a clone changed the original"
    );
}

#[derive(Debug, thiserror::Error)]
#[error("the handler of this one panics")]
struct Cursed;

fn counted(registry: &Registry, series: &str) -> Option<f64> {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    genro_test_support::series_value(&text, series)
}

#[tokio::test]
async fn a_panic_on_the_error_path_still_answers_500_with_an_error_id_and_is_counted() {
    let logs = logs();
    let panicking_handler = ErrorLayer::new().handler("cursed", |_: &Cursed, _| -> Problem {
        panic!("bug in the error handler")
    });
    let panicking_rule = ErrorLayer::new().critical_when(|_| panic!("bug in the rule"));
    let panicking_observer =
        ErrorLayer::new().observer(|_r: Arc<ErrorReport>| async { panic!("bug in the observer") });
    for (name, layer) in [
        ("handler", panicking_handler),
        ("rule", panicking_rule),
        ("observer", panicking_observer),
    ] {
        let mut registry = Registry::default();
        layer.register_metrics(&mut registry);
        let app = Router::new()
            .route(
                "/cursed",
                get(|| async { Err::<String, Error>(Cursed.into()) }),
            )
            .layer(layer);
        let a = get_with(&app, "/cursed", None).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        let id = a.headers["x-error-id"].to_str().unwrap().to_owned();
        assert_eq!(json(&a.body)["error_id"], id.as_str(), "{name}: {}", a.body);
        assert_eq!(
            counted(
                &registry,
                r#"errors_total{kind="panic",type="error_path_panic"}"#
            ),
            Some(1.0),
            "{name}"
        );
        assert!(
            logs.lines(&format!("error_id={id}"))
                .iter()
                .any(|l| l.contains("ERROR")),
            "{name}: logged with its id"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_observer_delays_neither_the_others_nor_the_response_past_its_bound() {
    logs();
    let second_saw = Arc::new(Mutex::new(Vec::new()));
    let layer = ErrorLayer::new()
        .observer(|_r: Arc<ErrorReport>| std::future::pending::<()>())
        .observer({
            let seen = second_saw.clone();
            move |r: Arc<ErrorReport>| {
                seen.lock().unwrap().push(r.envelope.short_id().to_string());
                async {}
            }
        })
        .observer_timeout(Duration::from_secs(2));
    let app = app(layer);
    let started = tokio::time::Instant::now();
    let a = get_with(&app, "/panic", None).await;
    let waited = started.elapsed();
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        second_saw.lock().unwrap().as_slice(),
        [a.headers["x-error-id"].to_str().unwrap()],
        "the second observer ran although the first hangs"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2_100),
        "the response waited {waited:?}"
    );
}

#[tokio::test]
async fn critical_errors_are_notified_with_the_request_and_others_are_not() {
    logs();
    let sent = Arc::new(Mutex::new(Vec::<genro_notify::Notification>::new()));
    let layer = layer().notifier({
        let sent = sent.clone();
        move |n: genro_notify::Notification| {
            sent.lock().unwrap().push(n);
            async {}
        }
    });
    let app = app(layer);
    let a = get_with(&app, "/panic", None).await;
    get_with(&app, "/missing", None).await;
    let id = a.headers["x-error-id"].to_str().unwrap().to_owned();
    for _ in 0..100 {
        if !sent.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "only the panic is critical: {sent:?}");
    assert_eq!(sent[0].kind, "critical_error");
    assert_eq!(sent[0].details["error_id"], id);
    assert_eq!(sent[0].details["error_type"], "panic");
    assert_eq!(sent[0].request.as_ref().unwrap().path, "/panic");
}

#[tokio::test]
async fn a_cancelled_request_drops_its_handler_and_answers_503_with_an_error_id() {
    let logs = logs();
    struct Guard(Arc<Mutex<bool>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let dropped: Arc<Mutex<bool>> = Arc::default();
    let (started_tx, started_rx) =
        tokio::sync::oneshot::channel::<Arc<genro_envelope::RequestEnvelope>>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let app = Router::new()
        .route(
            "/slow",
            get({
                let dropped = dropped.clone();
                move |axum::Extension(envelope): axum::Extension<
                    Arc<genro_envelope::RequestEnvelope>,
                >| async move {
                    let _guard = Guard(dropped);
                    let tx = started_tx.lock().unwrap().take().unwrap();
                    let _ = tx.send(envelope.clone());
                    std::future::pending::<()>().await;
                    "never"
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(ErrorLayer::new())
                .layer(genro_envelope::CancelLayer::new()),
        );
    let request = tokio::spawn({
        let app = app.clone();
        async move { get_with(&app, "/slow", Some("application/json")).await }
    });
    let envelope = started_rx.await.unwrap();
    assert!(!*dropped.lock().unwrap());
    assert!(envelope.cancel());
    let answer = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("a cancelled request ends at once")
        .unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(*dropped.lock().unwrap(), "the handler's drop guard ran");
    let id = envelope.short_id().to_string();
    assert_eq!(answer.headers["x-error-id"], id.as_str());
    assert_eq!(json(&answer.body)["error_id"], id.as_str());
    let lines = logs.lines(&id);
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    assert!(lines[0].contains("cancelled"), "{lines:?}");
}

#[tokio::test]
async fn an_observer_can_choose_the_status_and_the_error_id_stays() {
    logs();
    let app = app(layer().observer(|r: Arc<ErrorReport>| {
        assert!(r.answer_with(StatusCode::IM_A_TEAPOT));
        assert!(
            !r.answer_with(StatusCode::BAD_GATEWAY),
            "the first choice wins"
        );
        async {}
    }));
    let a = get_with(&app, "/panic", Some("application/json")).await;
    assert_eq!(a.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(
        json(&a.body)["error_id"],
        a.headers["x-error-id"].to_str().unwrap()
    );
    assert_eq!(json(&a.body)["status"], 418);
}

#[tokio::test]
async fn a_panic_report_carries_the_backtrace_its_hook_captured() {
    logs();
    genro_errors::install_panic_hook();
    let seen: Arc<Mutex<Option<Option<String>>>> = Arc::default();
    let app = app(layer().observer({
        let seen = seen.clone();
        move |r: Arc<ErrorReport>| {
            *seen.lock().unwrap() = Some(r.backtrace.clone());
            async {}
        }
    }));
    // Captured whatever the environment says, as `RUST_BACKTRACE=1` would.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        genro_errors::remember_panic_backtrace(&std::backtrace::Backtrace::force_capture());
        hook(info);
    }));
    let a = get_with(&app, "/panic", None).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    let backtrace = seen
        .lock()
        .unwrap()
        .clone()
        .expect("observed")
        .expect("a backtrace");
    assert!(backtrace.contains("layer"), "{backtrace}");
}

#[tokio::test]
async fn observers_of_a_response_nobody_awaits_any_more_are_stopped() {
    logs();
    struct Flag(Arc<Mutex<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let stopped: Arc<Mutex<bool>> = Arc::default();
    let app = app(layer()
        .observer({
            let stopped = stopped.clone();
            move |_r: Arc<ErrorReport>| {
                let flag = Flag(stopped.clone());
                async move {
                    let _flag = flag;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        })
        .observer_timeout(Duration::from_secs(120)));
    // The client gives up (a reset stream, a dropped connection): the response future is dropped.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), get_with(&app, "/panic", None)).await;
    assert!(gave_up.is_err(), "the observer holds the response");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !*stopped.lock().unwrap() {
        assert!(
            Instant::now() < deadline,
            "the observer still runs for a response nobody awaits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn client_error_lines_past_the_rate_are_summed_up_and_every_server_error_is_written() {
    let logs = logs();
    let layer = ErrorLayer::new().client_error_lines_per_second(std::num::NonZeroU32::new(3));
    let mut registry = Registry::default();
    layer.register_metrics(&mut registry);
    let app = Router::new()
        .route(
            "/throttled/{n}",
            get(|| async {
                Err::<String, Error>(Error::msg("gone for good").with_status(StatusCode::GONE))
            }),
        )
        .route(
            "/throttled-broken/{n}",
            get(|| async { Err::<String, Error>(Error::msg("broken")) }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(layer),
        );
    // A client erring as fast as it can, and a server failing as often: within one second
    // (the clock is paused).
    for n in 0..25 {
        assert_eq!(
            get_with(&app, &format!("/throttled/{n}"), None)
                .await
                .status,
            410
        );
        assert_eq!(
            get_with(&app, &format!("/throttled-broken/{n}"), None)
                .await
                .status,
            500
        );
    }
    // The summary is written when the second ends.
    let out = wait_for("the summary line", async || {
        let out = logs.contents();
        out.contains("22 more like this").then_some(out)
    })
    .await;
    let lines = |needle: &str| -> Vec<&str> {
        out.lines()
            .filter(|l| l.contains("request failed") && l.contains(needle))
            .collect()
    };
    assert_eq!(lines("path=/throttled/").len(), 3, "{out}");
    let summaries = lines("more like this");
    assert_eq!(summaries.len(), 1, "{out}");
    assert!(
        summaries[0].contains("WARN")
            && summaries[0].contains("22 more like this in the last second")
            && summaries[0].contains("status=410")
            && summaries[0].contains("suppressed=22"),
        "{}",
        summaries[0]
    );
    // Server errors are never left out.
    assert_eq!(lines("path=/throttled-broken/").len(), 25, "{out}");
    // Every error is counted, written or not.
    let mut metrics = String::new();
    encode(&mut metrics, &registry).unwrap();
    assert!(
        metrics.contains(r#"errors_total{kind="error",type="other"} 50"#),
        "{metrics}"
    );
}
