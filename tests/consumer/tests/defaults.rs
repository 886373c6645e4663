//! What a user who adds `genro-metrics = "0.1"` (and envelope, errors) to an axum app gets,
//! with no feature named: route templates, the envelope extractor, and handler errors rendered.

use axum::{body::Body, routing::get, Router};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::test]
async fn default_features_label_axum_routes_and_carry_handler_errors() {
    let collector = genro_metrics::MetricsCollector::new();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|envelope: genro_envelope::Envelope| async move { envelope.short_id().to_string() }),
        )
        .route(
            "/fail",
            get(|| async { Err::<String, genro_errors::Error>(genro_errors::Error::msg("x")) }),
        )
        .layer(genro_errors::ErrorLayer::new())
        .layer(genro_metrics::MetricsLayer::new(&collector))
        .layer(genro_envelope::EnvelopeLayer::new());
    for path in ["/users/1", "/users/2", "/fail"] {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        if path == "/fail" {
            assert_eq!(res.status(), 500);
            assert!(res.headers().contains_key("x-error-id"), "rendered by the error layer");
        }
        res.into_body().collect().await.unwrap();
    }
    let text = collector.render();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 2"#),
        "routes are templates with default features:\n{text}"
    );

    // The metrics layer alone, with no envelope to learn the route from.
    let alone = genro_metrics::MetricsCollector::new();
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(genro_metrics::MetricsLayer::new(&alone));
    let res = app
        .oneshot(Request::get("/orders/9").body(Body::empty()).unwrap())
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let text = alone.render();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/orders/{id}",status="200"} 1"#),
        "the metrics layer alone labels routes with its default features:\n{text}"
    );
}
