//! Compile-time contract: every public Layer and Service is `Clone + Send + Sync + 'static` and
//! fits inside an axum 0.8 `Router`, both per route (`Router::layer`) and around the whole router.

use std::convert::Infallible;

use axum::{body::Body, routing::get, Router};
use genro_asgi::{
    envelope::{EnvelopeService, ResponseFuture as EnvelopeFuture},
    errors::{ErrorService, ResponseFuture as ErrorsFuture},
    metrics::{MetricsService, ResponseBody as MetricsBody, ResponseFuture as MetricsFuture},
    registry::{RegistryService, ResponseBody, ResponseFuture as RegistryFuture},
    stack::{GenroService, ResponseBody as GenroBody, ResponseFuture as GenroFuture},
    EnvelopeLayer, EnvelopeRegistry, ErrorLayer, GenroLayer, InFlightToken, MetricsCollector,
    MetricsEndpoint, MetricsLayer, Notifiers, RegistryLayer, WebhookNotifier,
};
use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt};

fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
fn assert_send<T: Send + 'static>() {}

type Inner = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

#[test]
fn layers_and_services_are_clone_send_sync_static() {
    assert_shareable::<EnvelopeLayer>();
    assert_shareable::<MetricsLayer>();
    assert_shareable::<ErrorLayer>();
    assert_shareable::<MetricsCollector>();
    assert_shareable::<MetricsEndpoint>();
    assert_shareable::<Notifiers>();
    assert_shareable::<WebhookNotifier>();
    assert_shareable::<MetricsService<Inner>>();
    assert_shareable::<ErrorService<Inner>>();
    assert_send::<MetricsFuture<<Inner as tower::Service<Request<Body>>>::Future>>();
    assert_send::<ErrorsFuture<<Inner as tower::Service<Request<Body>>>::Future, Body>>();
    assert_send::<MetricsBody<Body>>();
    assert_shareable::<RegistryLayer>();
    assert_shareable::<EnvelopeRegistry>();
    assert_shareable::<InFlightToken>();
    assert_shareable::<EnvelopeService<Inner>>();
    assert_shareable::<RegistryService<Inner>>();
    assert_shareable::<RegistryService<EnvelopeService<Inner>>>();
    assert_send::<EnvelopeFuture<<Inner as tower::Service<Request<Body>>>::Future>>();
    assert_send::<RegistryFuture<<Inner as tower::Service<Request<Body>>>::Future>>();
    assert_send::<ResponseBody<Body>>();
    assert_shareable::<GenroLayer>();
    assert_shareable::<GenroService<ErrorService<Inner>>>();
    assert_send::<GenroFuture<<ErrorService<Inner> as tower::Service<Request<Body>>>::Future>>();
    assert_send::<GenroBody<Body>>();
}

#[tokio::test]
async fn the_stack_works_inside_an_axum_router() {
    let registry = EnvelopeRegistry::new();
    let collector = MetricsCollector::new();
    let stack = ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(RegistryLayer::new(registry.clone()))
        .layer(MetricsLayer::new(&collector))
        .layer(ErrorLayer::new());

    // Per route, inside the routing (sees MatchedPath) ...
    let per_route: Router = Router::new()
        .route("/a/{x}", get(|| async { "a" }))
        .layer(stack.clone());
    // ... as a route layer ...
    let route_layer: Router = Router::new()
        .route("/b", get(|| async { "b" }))
        .route_layer(stack.clone());
    // ... and around the whole router, as a plain tower service.
    let around = stack.service(Router::new().route("/c", get(|| async { "c" })));

    for (svc, path) in [(per_route, "/a/1"), (route_layer, "/b")] {
        let res = svc
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().contains_key("x-request-id"));
    }
    let res = around
        .oneshot(Request::get("/c").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    drop(res);
    assert!(registry.is_empty());
}
