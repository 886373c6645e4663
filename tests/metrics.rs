//! Metrics over real sockets: bounded series (promtool accepts a real scrape), no client-made
//! route labels, and route labels under tonic.

mod common;

use std::time::Duration;

use axum::{routing::get, Router};
use bytes::Bytes;
use genro_asgi::{
    EnvelopeLayer, EnvelopeRegistry, MetricsCollector, MetricsLayer, RegistryLayer, Watchdog,
    WatchdogConfig,
};
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use tower::ServiceBuilder;

use genro_test_support::promtool;

fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

fn app(collector: &MetricsCollector, registry: &EnvelopeRegistry) -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .nest(
            "/api",
            Router::new().route("/orders/{order}", get(|| async { "order" })),
        )
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(RegistryLayer::new(registry.clone()))
                .layer(MetricsLayer::new(collector)),
        )
        .route_service("/metrics", collector.endpoint())
}

/// Bounded series: 10,000 requests with random unmatched paths and odd methods add a constant
/// number of series; `promtool check metrics` accepts a real scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_and_methods_add_no_series_and_promtool_accepts_the_scrape() {
    let collector = MetricsCollector::new();
    let registry = EnvelopeRegistry::new();
    // Every genro crate's metrics in the one registry.
    registry.register_metrics(&mut collector.registry());
    EnvelopeLayer::new().register_metrics(&mut collector.registry());
    Watchdog::new(registry.clone(), WatchdogConfig::default())
        .register_metrics(&mut collector.registry());
    collector.register_process_metrics();
    let addr = common::serve(app(&collector, &registry)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let mut runner = TestRunner::deterministic();
    let path = "/[a-z0-9%._~-]{1,40}(/[a-zA-Z0-9]{1,12}){0,3}";
    let method = "[A-Z]{3,10}";
    let scrape = |client: Client<_, Empty<Bytes>>| async move {
        let res = client
            .get(format!("http://{addr}/metrics").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            res.headers()["content-type"],
            genro_asgi::metrics::PROMETHEUS_CONTENT_TYPE
        );
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };

    let mut after_warmup = 0;
    for i in 0..10_000 {
        let p = path.new_tree(&mut runner).unwrap().current();
        let m = method.new_tree(&mut runner).unwrap().current();
        let req = Request::builder()
            .method(Method::from_bytes(m.as_bytes()).unwrap())
            .uri(format!("http://{addr}{p}"))
            .body(Empty::new())
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert!(res.status().is_client_error(), "{p} gave {}", res.status());
        res.into_body().collect().await.unwrap();
        if i == 99 {
            after_warmup = series(&scrape(client.clone()).await);
        }
    }
    let after_all = series(&scrape(client.clone()).await);
    assert_eq!(
        after_all, after_warmup,
        "10,000 random requests added series"
    );

    // Known routes too, for the promtool check to see every kind of series.
    for p in ["/users/1", "/api/orders/2"] {
        let res = client
            .get(format!("http://{addr}{p}").parse().unwrap())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    let text = scrape(client.clone()).await;
    for line in text
        .lines()
        .filter(|l| l.starts_with("http_requests_total"))
    {
        assert!(
            line.contains("route=\"unmatched\"")
                || line.contains("route=\"/users/{id}\"")
                || line.contains("route=\"/api/orders/{order}\""),
            "unexpected route label: {line}"
        );
    }
    assert!(
        text.len() < 64 * 1024,
        "/metrics stays small: {} bytes",
        text.len()
    );
    assert!(text.contains("registry_in_flight"));
    assert!(text.contains("request_id_invalid_total"));
    assert!(text.contains("process_open_fds"));

    let (ok, said) = promtool(&text);
    assert!(
        ok,
        "promtool check metrics refused the scrape:\n{said}\n{text}"
    );

    // The check can fail: a family of a counter without the `_total` suffix is refused.
    let (bad, _) = promtool("# HELP x_seconds a counter\n# TYPE x_seconds counter\nx_seconds 1\n");
    assert!(!bad, "promtool must reject malformed input");
}

/// tonic: the route label is the `/package.Service/Method` template of implemented methods;
/// requests for methods that do not exist are `unmatched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_routes_are_method_templates() {
    use tonic_health::pb::HealthCheckRequest;

    let collector = MetricsCollector::new();
    let (addr, mut client) = tonic_health_server!(ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(MetricsLayer::new(&collector)));
    for _ in 0..3 {
        client
            .check(HealthCheckRequest {
                service: "genro.Test".into(),
            })
            .await
            .unwrap();
    }

    // Random gRPC method paths over a real HTTP/2 client: tonic answers unimplemented.
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    for i in 0..50 {
        let req = Request::post(format!("http://{addr}/evil.Service{i}/Method{i}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ])))
            .unwrap();
        let res = h2.request(req).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], "12");
        res.into_body().collect().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    let text = collector.render();
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/grpc.health.v1.Health/Check",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="unmatched",status="200"} 50"#),
        "{text}"
    );
    assert!(!text.contains("evil.Service"));
}

/// No client-made labels: 300 requests that claim gRPC, for random 2 KB paths, through the whole
/// stack over a real socket, add no route label and keep `/metrics` small; a real route seen
/// afterwards still gets its template, never `overflow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_claiming_grpc_mint_no_route_labels() {
    let collector = MetricsCollector::with_max_routes(50);
    let registry = EnvelopeRegistry::new();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .layer(genro_asgi::GenroLayer::new(&registry, &collector))
        .route_service("/metrics", collector.endpoint());
    let addr = common::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<Bytes>>();
    let mut rng = fastrand::Rng::with_seed(23);
    for _ in 0..300 {
        let path: String = (0..2048).map(|_| rng.alphanumeric()).collect();
        let req = Request::post(format!("http://{addr}/{path}.Service/Method"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ])))
            .unwrap();
        let res = client.request(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let res = client
        .get(format!("http://{addr}/users/7").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let res = client
        .get(format!("http://{addr}/metrics").parse().unwrap())
        .await
        .unwrap();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.len() < 256 * 1024, "/metrics is {} bytes", text.len());
    assert!(
        !text.contains(".Service"),
        "a client-made label reached /metrics"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(!text.contains("overflow"), "{text}");
    let (ok, said) = promtool(&text);
    assert!(ok, "{said}");
}
