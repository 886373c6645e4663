//! GenroLayer does what the four layers do: envelope and id header, registry until the body ends,
//! metrics with templates, and errors rendered with the envelope's id.

use std::{convert::Infallible, time::Duration};

use axum::{body::Body, routing::get, Router};
use genro_envelope::{Envelope, EnvelopeLayer, ResponseId};
use genro_errors::ErrorLayer;
use genro_metrics::MetricsCollector;
use genro_registry::EnvelopeRegistry;
use genro_stack::GenroLayer;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use genro_test_support::series_value as value;

/// A fresh registry and collector, and an app with a few routes under `GenroLayer`.
fn setup() -> (EnvelopeRegistry, MetricsCollector, Router) {
    let (registry, collector) = (EnvelopeRegistry::new(), MetricsCollector::new());
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|Envelope(envelope): Envelope| async move { envelope.internal_id().to_string() }),
        )
        .route("/stream", get(|| async { chunks() }))
        .route("/panic", get(boom))
        .layer(GenroLayer::new(&registry, &collector));
    (registry, collector, app)
}

async fn boom() -> &'static str {
    panic!("boom")
}

/// Two chunks, each after 50 ms.
fn chunks() -> Body {
    Body::from_stream(futures_util::stream::unfold(0, |n| async move {
        if n == 2 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, Infallible>("chunk"), n + 1))
    }))
}

async fn get_path(app: &Router, path: &str) -> http::Response<Body> {
    app.clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap_or_else(|e: Infallible| match e {})
}

#[tokio::test]
async fn envelope_id_header_and_metrics_with_the_template() {
    let (registry, collector, app) = setup();

    let res = get_path(&app, "/users/7").await;
    assert_eq!(res.status(), StatusCode::OK);
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    // The handler saw the envelope whose id is on the response.
    assert_eq!(std::str::from_utf8(&body).unwrap(), header);
    assert!(registry.is_empty());

    let text = collector.render();
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "http_requests_in_flight"), Some(0.0));
}

#[tokio::test]
async fn a_streaming_request_stays_registered_and_timed_until_its_body_ends() {
    let (registry, collector, app) = setup();

    let res = get_path(&app, "/stream").await;
    assert_eq!(registry.len(), 1, "registered while the body streams");
    assert_eq!(
        registry.snapshot()[0].phase(),
        genro_envelope::Phase::Streaming
    );
    let text = collector.render();
    assert_eq!(value(&text, "http_requests_in_flight"), Some(1.0));
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="/stream",status="200"}"#
        ),
        None,
        "not counted before the body ends"
    );

    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"chunkchunk");
    assert!(registry.is_empty());
    let text = collector.render();
    assert_eq!(value(&text, "http_requests_in_flight"), Some(0.0));
    assert_eq!(
        value(
            &text,
            r#"http_response_size_bytes_sum{method="GET",route="/stream"}"#
        ),
        Some(10.0),
        "{text}"
    );
    let seconds = value(
        &text,
        r#"http_request_duration_seconds_sum{method="GET",route="/stream"}"#,
    )
    .unwrap();
    assert!(seconds >= 0.1, "timed to the end of the body: {seconds}");
}

#[tokio::test]
async fn a_panic_is_one_rendered_response_with_the_envelope_id() {
    let (registry, collector, app) = setup();

    let res = get_path(&app, "/panic").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let error_id = res.headers()["x-error-id"].to_str().unwrap().to_owned();
    // The error id is the short id of the same envelope: the last 8 hex digits of its id.
    assert_eq!(error_id, request_id.replace('-', "")[24..]);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["error_id"], error_id.as_str());
    assert!(registry.is_empty());
    assert_eq!(
        value(
            &collector.render(),
            r#"http_requests_total{method="GET",route="/panic",status="500"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_dropped_request_leaves_nothing_behind() {
    let (registry, collector) = (EnvelopeRegistry::new(), MetricsCollector::new());
    let app = Router::new()
        .route("/hang", get(std::future::pending::<&'static str>))
        .layer(GenroLayer::new(&registry, &collector));

    let call = get_path(&app, "/hang");
    assert!(tokio::time::timeout(Duration::from_millis(20), call)
        .await
        .is_err());
    assert!(registry.is_empty(), "{:?}", registry.snapshot());
    assert_eq!(
        value(&collector.render(), "http_requests_in_flight"),
        Some(0.0)
    );
}

#[tokio::test]
async fn its_parts_keep_their_own_configuration() {
    let (registry, collector) = (EnvelopeRegistry::new(), MetricsCollector::new());
    let app = Router::new().route("/panic", get(boom)).layer(
        GenroLayer::new(&registry, &collector)
            .envelope(EnvelopeLayer::new().response_id(ResponseId::Internal))
            .errors(ErrorLayer::new().show_traceback(true)),
    );
    let req = Request::get("/panic")
        .header("x-request-id", "client-1")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    // Internal ids on the response, even with a valid external one.
    assert_ne!(res.headers()["x-request-id"], "client-1");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("boom"),
        "show_traceback reaches the error part: {problem}"
    );
}

#[tokio::test]
async fn an_envelope_made_further_out_is_kept() {
    let (registry, collector) = (EnvelopeRegistry::new(), MetricsCollector::new());
    let app = Router::new()
        .route(
            "/id",
            get(|Envelope(e): Envelope| async move { e.internal_id().to_string() }),
        )
        .layer(GenroLayer::new(&registry, &collector))
        .layer(EnvelopeLayer::new());
    let res = get_path(&app, "/id").await;
    let headers = res.headers().get_all("x-request-id").iter().count();
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(headers, 1, "one id header");
    assert_eq!(std::str::from_utf8(&body).unwrap(), header);
}

#[tokio::test]
async fn no_id_header_when_the_envelope_part_writes_none() {
    let (registry, collector) = (EnvelopeRegistry::new(), MetricsCollector::new());
    let app = Router::new().route("/x", get(|| async { "x" })).layer(
        GenroLayer::new(&registry, &collector)
            .envelope(EnvelopeLayer::new().response_id(ResponseId::None)),
    );
    let res = get_path(&app, "/x").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("x-request-id"));
}
