//! MetricsLayer at the service level: labels, streaming duration, cancellation, caps,
//! client-made labels, the unmatched warning, and the endpoint's negotiation and bounds.

use std::{convert::Infallible, time::Duration};

use axum::{body::Body, routing::get, Router};
use genro_metrics::{
    MetricsCollector, MetricsLayer, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};
use http::{Method, Request};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

use genro_test_support::{http::call, series_value as value};

/// The status of one request through `app`.
async fn status(app: &Router, method: Method, path: &str) -> u16 {
    call::<_, Body, _>(app.clone(), method.as_str(), path)
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn nested_routes_are_templates_and_strangers_are_bounded() {
    let collector = MetricsCollector::new();
    let api = Router::new().route("/users/{id}", get(|| async { "u" }).post(|| async { "p" }));
    let app = Router::new()
        .nest("/api", api)
        .route("/health", get(|| async { "ok" }))
        .layer(MetricsLayer::new(&collector));

    assert_eq!(status(&app, Method::GET, "/api/users/1").await, 200);
    assert_eq!(status(&app, Method::GET, "/api/users/2").await, 200);
    assert_eq!(status(&app, Method::POST, "/api/users/3").await, 200);
    assert_eq!(status(&app, Method::GET, "/nope/abc").await, 404);
    let odd = Method::from_bytes(b"BREW").unwrap();
    assert_eq!(status(&app, odd, "/health").await, 405);

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
async fn claimed_routes_are_capped_and_templates_never_are() {
    let collector = MetricsCollector::with_max_routes(2);
    // Routes claimed at run time, through the envelope.
    let claimed = tower::ServiceBuilder::new()
        .layer(genro_envelope::EnvelopeLayer::new())
        .layer(MetricsLayer::new(&collector))
        .service(tower::service_fn(|req: Request<Body>| async move {
            let route = req.uri().path().to_owned();
            genro_envelope::RequestEnvelope::from_request(&req)
                .unwrap()
                .set_route(route);
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }));
    for p in ["/a", "/b", "/c", "/d"] {
        let res = claimed
            .clone()
            .oneshot(Request::get(p).body(Body::empty()).unwrap())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    // Templates of the router, after the cap is reached, keep their own labels.
    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .route("/y", get(|| async { "y" }))
        .route("/z", get(|| async { "z" }))
        .layer(MetricsLayer::new(&collector));
    for p in ["/x", "/y", "/z"] {
        status(&app, Method::GET, p).await;
    }
    let text = collector.render();
    let count = |route: &str| {
        value(
            &text,
            &format!(r#"http_requests_total{{method="GET",route="{route}",status="200"}}"#),
        )
    };
    assert_eq!(count("/a"), Some(1.0), "{text}");
    assert_eq!(count("/b"), Some(1.0), "{text}");
    assert_eq!(count("/c"), None, "{text}");
    assert_eq!(count("overflow"), Some(2.0), "{text}");
    for template in ["/x", "/y", "/z"] {
        assert_eq!(count(template), Some(1.0), "{template}: {text}");
    }
}

/// Requests that only claim to be gRPC (by their content type) never name a route label: the
/// response must prove the method exists.
#[tokio::test]
async fn grpc_typed_requests_for_random_paths_add_no_label() {
    let collector = MetricsCollector::new();
    let app = Router::new()
        .route("/known", get(|| async { "k" }))
        .layer(MetricsLayer::new(&collector));
    for i in 0..300 {
        let path = format!("/evil.Service{i}/{}", "A".repeat(2048));
        let req = Request::post(path)
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 404);
        res.into_body().collect().await.unwrap();
    }
    // And around the router (no MatchedPath at all), with an envelope.
    let around = tower::ServiceBuilder::new()
        .layer(genro_envelope::EnvelopeLayer::new())
        .layer(MetricsLayer::new(&collector))
        .service(app.clone());
    for i in 0..300 {
        let req = Request::post(format!("/evil.Other{i}/M"))
            .header("content-type", "application/grpc+proto")
            .body(Body::empty())
            .unwrap();
        let res = around.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(status(&app, Method::GET, "/known").await, 200);
    let text = collector.render();
    assert!(
        !text.contains("evil."),
        "a client-made label: {}",
        &text[..2000]
    );
    assert!(text.len() < 256 * 1024, "{} bytes", text.len());
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="/known",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_successful_unmatched_response_is_warned_about_once() {
    let logs = genro_test_support::LogBuffer::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(logs.subscriber(), || {
        let collector = MetricsCollector::new();
        // The layer around the router, where no route template can be seen.
        let app = MetricsLayer::new(&collector)
            .layer(Router::new().route("/users/{id}", get(|| async { "u" })));
        rt.block_on(async {
            for _ in 0..5 {
                let res = app
                    .clone()
                    .oneshot(Request::get("/users/1").body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                res.into_body().collect().await.unwrap();
            }
        });
    });
    let warnings = logs.lines("route=\"unmatched\"");
    assert_eq!(warnings.len(), 1, "{}", logs.contents());
    assert!(warnings[0].contains("`axum` feature") && warnings[0].contains("Router::layer"));
}

#[tokio::test]
async fn the_endpoint_negotiates_the_format() {
    let collector = MetricsCollector::new();
    collector.register_process_metrics();
    let mut svc = collector.endpoint();
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

/// Two collectors seeing the same template (one router, two layers), and routers rebuilt over
/// and over, each count exactly their own requests under the right label.
#[tokio::test(flavor = "current_thread")]
async fn collectors_and_rebuilt_routers_count_only_their_own() {
    let first = MetricsCollector::new();
    let second = MetricsCollector::new();
    let both = Router::new()
        .route("/same", get(|| async { "x" }))
        .layer(MetricsLayer::new(&first))
        .layer(MetricsLayer::new(&second));
    for _ in 0..3 {
        assert_eq!(status(&both, Method::GET, "/same").await, 200);
    }
    // Rebuilt routers: the freed template of one can be allocated again for the next.
    for i in 0..50 {
        let route = if i % 2 == 0 { "/even" } else { "/odd" };
        let rebuilt = Router::new()
            .route(route, get(|| async { "x" }))
            .layer(MetricsLayer::new(&first));
        assert_eq!(status(&rebuilt, Method::GET, route).await, 200);
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

/// A collector whose encoding is slow (as reading `/proc` can be) and counted.
#[derive(Debug)]
struct SlowCollector(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl prometheus_client::collector::Collector for SlowCollector {
    fn encode(
        &self,
        _encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn scrapes_render_off_the_runtime_share_renders_and_are_bounded() {
    let collector = MetricsCollector::new();
    let renders = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    collector
        .registry()
        .register_collector(Box::new(SlowCollector(renders.clone())));

    // The runtime has one thread: a render on it would stop this ticker for 200 ms at a time.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let scrapes: Vec<_> = (0..100)
        .map(|_| {
            let mut endpoint = collector.endpoint();
            tokio::spawn(async move {
                let res = endpoint
                    .call(Request::get("/metrics").body(()).unwrap())
                    .await
                    .unwrap();
                res.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for scrape in scrapes {
        statuses.push(scrape.await.unwrap());
    }
    ticker.abort();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(ok, genro_metrics::MAX_WAITING_SCRAPES, "{statuses:?}");
    assert_eq!(busy, 100 - genro_metrics::MAX_WAITING_SCRAPES);
    let rendered = renders.load(std::sync::atomic::Ordering::SeqCst);
    assert!(rendered <= 2, "{rendered} renders for {ok} scrapes");
    assert!(
        ticks.load(std::sync::atomic::Ordering::SeqCst) >= 20,
        "the runtime was blocked while rendering"
    );
}
