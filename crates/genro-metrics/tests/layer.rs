//! MetricsLayer at the service level: labels, streaming duration, cancellation, caps, negotiation.

use std::{convert::Infallible, time::Duration};

use axum::{body::Body, routing::get, Router};
use genro_metrics::{
    MetricsCollector, MetricsLayer, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};
use http::{Method, Request};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

use genro_test_support::series_value as value;

async fn call(app: &Router, method: Method, path: &str) -> u16 {
    let res = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    res.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn nested_routes_are_templates_and_strangers_are_bounded() {
    let collector = MetricsCollector::new();
    let api = Router::new().route("/users/{id}", get(|| async { "u" }).post(|| async { "p" }));
    let app = Router::new()
        .nest("/api", api)
        .route("/health", get(|| async { "ok" }))
        .layer(MetricsLayer::new(&collector));

    assert_eq!(call(&app, Method::GET, "/api/users/1").await, 200);
    assert_eq!(call(&app, Method::GET, "/api/users/2").await, 200);
    assert_eq!(call(&app, Method::POST, "/api/users/3").await, 200);
    assert_eq!(call(&app, Method::GET, "/nope/abc").await, 404);
    let odd = Method::from_bytes(b"BREW").unwrap();
    assert_eq!(call(&app, odd, "/health").await, 405);

    let text = collector.render();
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="/api/users/{id}",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="POST",route="/api/users/{id}",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="other",route="/health",status="405"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("/api/users/1"), "no raw paths");
    assert!(!text.contains("BREW"));
    assert_eq!(value(&text, "http_requests_in_flight"), Some(0.0));
    assert!(
        text.contains(r#"http_response_size_bytes_sum{method="GET",route="/api/users/{id}"} 2.0"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_streaming_body_is_timed_to_its_end_and_a_dropped_one_leaves_in_flight() {
    let collector = MetricsCollector::new();
    let app = Router::new()
        .route("/stream", get(|| async { one_second_body() }))
        .layer(MetricsLayer::new(&collector));

    let res = app
        .clone()
        .oneshot(Request::get("/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        value(&collector.render(), "http_requests_in_flight"),
        Some(1.0)
    );
    res.into_body().collect().await.unwrap();
    let text = collector.render();
    let sum = value(
        &text,
        r#"http_request_duration_seconds_sum{method="GET",route="/stream"}"#,
    )
    .unwrap();
    assert!(sum >= 1.0, "a 1 s stream recorded as {sum} s");
    assert_eq!(value(&text, "http_requests_in_flight"), Some(0.0));

    // The client goes away mid-body: in flight goes back down, the request is still counted.
    let res = app
        .clone()
        .oneshot(Request::get("/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    assert_eq!(
        value(&collector.render(), "http_requests_in_flight"),
        Some(1.0)
    );
    drop(body);
    let text = collector.render();
    assert_eq!(value(&text, "http_requests_in_flight"), Some(0.0));
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="/stream",status="200"}"#
        ),
        Some(2.0)
    );

    // The response future dropped before the handler answers: in flight goes back down.
    let slow = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .layer(MetricsLayer::new(&collector));
    let mut svc = slow.clone();
    let fut = svc.call(Request::get("/slow").body(Body::empty()).unwrap());
    assert!(tokio::time::timeout(Duration::from_millis(20), fut)
        .await
        .is_err());
    assert_eq!(
        value(&collector.render(), "http_requests_in_flight"),
        Some(0.0)
    );
}

/// Five chunks, each after 250 ms: the body takes 1 s.
fn one_second_body() -> Body {
    Body::from_stream(futures_util::stream::unfold(0, |n| async move {
        if n == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((
            Ok::<_, Infallible>(bytes::Bytes::from_static(b"tick\n")),
            n + 1,
        ))
    }))
}

#[tokio::test]
async fn distinct_routes_are_capped() {
    let collector = MetricsCollector::max_routes(2);
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .route("/c", get(|| async { "c" }))
        .route("/d", get(|| async { "d" }))
        .layer(MetricsLayer::new(&collector));
    for p in ["/a", "/b", "/c", "/d"] {
        call(&app, Method::GET, p).await;
    }
    let text = collector.render();
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="overflow",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_service_negotiates_the_format() {
    let collector = MetricsCollector::new();
    collector.register_process_metrics();
    let mut svc = collector.service();
    let res = svc
        .call(Request::get("/metrics").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], PROMETHEUS_CONTENT_TYPE);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains("# TYPE http_requests_in_flight gauge"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));

    let req = Request::get("/metrics")
        .header(
            "accept",
            "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
        )
        .body(())
        .unwrap();
    let res = svc.call(req).await.unwrap();
    assert_eq!(res.headers()["content-type"], OPENMETRICS_CONTENT_TYPE);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"));
    #[cfg(target_os = "linux")]
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

/// Route handles are cached by template address: two collectors seeing the same template (one
/// router, two layers), and routers rebuilt over and over (templates freed and allocated again),
/// must still each count exactly their own requests under the right label.
#[tokio::test(flavor = "current_thread")]
async fn the_route_cache_never_mixes_collectors_or_routers() {
    let first = MetricsCollector::new();
    let second = MetricsCollector::new();
    let both = Router::new()
        .route("/same", get(|| async { "x" }))
        .layer(MetricsLayer::new(&first))
        .layer(MetricsLayer::new(&second));
    for _ in 0..3 {
        assert_eq!(call(&both, Method::GET, "/same").await, 200);
    }
    // Rebuilt routers: the freed template of one can be allocated again for the next.
    for i in 0..50 {
        let route = if i % 2 == 0 { "/even" } else { "/odd" };
        let rebuilt = Router::new()
            .route(route, get(|| async { "x" }))
            .layer(MetricsLayer::new(&first));
        assert_eq!(call(&rebuilt, Method::GET, route).await, 200);
    }

    let count = |c: &MetricsCollector, route: &str| {
        value(
            &c.render(),
            &format!(r#"http_requests_total{{method="GET",route="{route}",status="200"}}"#),
        )
    };
    assert_eq!(count(&first, "/same"), Some(3.0));
    assert_eq!(count(&second, "/same"), Some(3.0));
    assert_eq!(count(&first, "/even"), Some(25.0));
    assert_eq!(count(&first, "/odd"), Some(25.0));
    assert_eq!(count(&second, "/even"), None);
}
