//! The request lifecycle over real sockets: no leaks on cancel, the streaming lifetime, and
//! upgraded WebSocket sessions.

mod common;

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::ws::{Message as AxumMessage, WebSocketUpgrade},
    response::Response,
    routing::{any, get},
    Extension, Router,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use genro_asgi::{
    EnvelopeLayer, EnvelopeRegistry, GenroLayer, InFlightToken, MetricsCollector, MetricsLayer,
    Phase, RegistryLayer,
};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::Instant;
use tower::ServiceBuilder;

/// A body that yields `chunks` chunks, each after waiting `every`, then ends. With `None` it
/// yields one chunk at once and then never ends.
fn slow_body(chunks: Option<usize>, every: Duration) -> Body {
    let stream = futures_util::stream::unfold(0usize, move |n| async move {
        match chunks {
            Some(total) if n >= total => return None,
            Some(_) => tokio::time::sleep(every).await,
            None if n > 0 => std::future::pending::<()>().await,
            None => {}
        }
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("chunk{n};"))),
            n + 1,
        ))
    });
    Body::from_stream(stream)
}

fn app(registry: &EnvelopeRegistry) -> Router {
    app_layered(registry, &MetricsCollector::new(), Layering::Separate)
}

/// The same routes under the four layers, or under `GenroLayer`, which must behave the same.
#[derive(Clone, Copy, Debug)]
enum Layering {
    Separate,
    Fused,
}

fn app_layered(
    registry: &EnvelopeRegistry,
    collector: &MetricsCollector,
    layering: Layering,
) -> Router {
    let routes = Router::new()
        .route("/fast", get(|| async { "ok" }))
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/stream-forever",
            get(|| async { slow_body(None, Duration::ZERO) }),
        )
        .route(
            "/stream10",
            get(|| async { slow_body(Some(10), Duration::from_millis(200)) }),
        );
    match layering {
        Layering::Separate => routes.layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(RegistryLayer::new(registry.clone()))
                .layer(MetricsLayer::new(collector)),
        ),
        Layering::Fused => routes.layer(GenroLayer::new(registry, collector)),
    }
}

/// The envelope and registry layers, tracking in `registry`.
fn tracked(
    registry: &EnvelopeRegistry,
) -> ServiceBuilder<
    tower::layer::util::Stack<
        RegistryLayer,
        tower::layer::util::Stack<EnvelopeLayer, tower::layer::util::Identity>,
    >,
> {
    ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(RegistryLayer::new(registry.clone()))
}

fn in_flight_gauge(collector: &MetricsCollector) -> String {
    collector
        .render()
        .lines()
        .find(|l| l.starts_with("http_requests_in_flight "))
        .unwrap_or_default()
        .to_owned()
}

/// No leaks on cancel: 20,000 requests; 10% dropped while the handler runs, 5% dropped while the
/// body streams. Within 1 s of the end, the registry is empty and `http_requests_in_flight` is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_leaks_on_cancel() {
    no_leaks_on_cancel_with(Layering::Separate).await;
}

/// No leaks on cancel, under `GenroLayer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_leaks_on_cancel_fused() {
    no_leaks_on_cancel_with(Layering::Fused).await;
}

async fn no_leaks_on_cancel_with(layering: Layering) {
    const TOTAL: usize = 20_000;
    const WORKERS: usize = 50;
    let registry = EnvelopeRegistry::new();
    let collector = MetricsCollector::new();
    let addr = common::serve(app_layered(&registry, &collector, layering)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let next = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, next, completed, peak, registry) = (
                client.clone(),
                next.clone(),
                completed.clone(),
                peak.clone(),
                registry.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= TOTAL {
                        break;
                    }
                    let path = match i % 20 {
                        0 | 1 => "/hang",       // 10%: dropped while the handler runs
                        2 => "/stream-forever", // 5%: dropped mid-body
                        _ => "/fast",
                    };
                    let uri = format!("http://{addr}{path}");
                    let fut = client.get(uri.parse().unwrap());
                    match path {
                        "/hang" => {
                            // No response can come; give the server time to start the handler.
                            assert!(tokio::time::timeout(Duration::from_millis(20), fut)
                                .await
                                .is_err());
                            peak.fetch_max(registry.len(), Ordering::Relaxed);
                        }
                        "/stream-forever" => {
                            let mut body = fut.await.expect("response head").into_body();
                            let first = body.frame().await.expect("a frame").expect("data");
                            assert!(first.is_data());
                            // Drop with the body unfinished: the client goes away mid-stream.
                        }
                        _ => {
                            let res = fut.await.expect("response");
                            assert_eq!(res.status(), 200);
                            res.into_body().collect().await.expect("body");
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    drop(client);

    assert_eq!(completed.load(Ordering::Relaxed), TOTAL * 17 / 20);
    assert!(
        peak.load(Ordering::Relaxed) > 0,
        "hanging requests were tracked while they ran"
    );
    let idle = registry.wait_idle(Duration::from_secs(1)).await;
    assert!(
        idle,
        "{} requests leaked: {:?}",
        registry.len(),
        registry.snapshot()
    );
    // The gauge drops with the same guards; by the time the registry is idle it is 0.
    assert_eq!(in_flight_gauge(&collector), "http_requests_in_flight 0");
}

/// Streaming lifetime: a body streams 10 chunks over 2 s; the request stays registered, in the
/// streaming phase, until the last chunk, so its lifetime is at least 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_body_keeps_the_request_until_its_last_chunk() {
    streaming_with(Layering::Separate).await;
}

/// Streaming lifetime, under `GenroLayer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_body_keeps_the_request_until_its_last_chunk_fused() {
    streaming_with(Layering::Fused).await;
}

async fn streaming_with(layering: Layering) {
    let registry = EnvelopeRegistry::new();
    let collector = MetricsCollector::new();
    let addr = common::serve(app_layered(&registry, &collector, layering)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let res = client
        .get(format!("http://{addr}/stream10").parse().unwrap())
        .await
        .unwrap();
    let envelope = registry
        .snapshot()
        .pop()
        .expect("registered while streaming");
    assert_eq!(envelope.route(), Some("/stream10"));
    let mut body = res.into_body();
    let mut chunks = 0;
    while let Some(frame) = body.frame().await {
        frame.unwrap();
        chunks += 1;
        if chunks < 10 {
            assert_eq!(
                registry.len(),
                1,
                "after chunk {chunks} the request is still in flight"
            );
            assert_eq!(envelope.phase(), Phase::Streaming);
        }
    }
    assert_eq!(chunks, 10);
    assert!(registry.wait_idle(Duration::from_secs(1)).await);
    let lifetime = Instant::now() - envelope.started();
    assert!(
        lifetime >= Duration::from_secs(2),
        "tracked for {lifetime:?}"
    );
    assert_eq!(envelope.phase(), Phase::Finished);
    // The recorded duration runs to the last chunk too.
    let text = collector.render();
    let recorded: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"http_request_duration_seconds_sum{method="GET",route="/stream10"} "#)
        })
        .expect("duration recorded")
        .parse()
        .unwrap();
    assert!(recorded >= 2.0, "recorded {recorded} s");
}

/// Streaming lifetime, second half: the client disconnects mid-body; the entry is gone within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_body_removes_the_entry() {
    let registry = EnvelopeRegistry::new();
    let addr = common::serve(app(&registry)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let res = client
        .get(format!("http://{addr}/stream10").parse().unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(registry.len(), 1);
    drop(body);
    drop(client);
    assert!(
        registry.wait_idle(Duration::from_secs(1)).await,
        "still tracked: {:?}",
        registry.snapshot()
    );
}

/// An upgraded WebSocket stays in flight, in the upgraded phase, until the session ends, when its
/// handler holds the InFlightToken; a real tokio-tungstenite client drives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_session_is_tracked_until_it_closes() {
    async fn ws(upgrade: WebSocketUpgrade, Extension(token): Extension<InFlightToken>) -> Response {
        upgrade.on_upgrade(move |mut socket| async move {
            let _tracked = token;
            while let Some(Ok(msg)) = socket.recv().await {
                if matches!(msg, AxumMessage::Close(_)) || socket.send(msg).await.is_err() {
                    break;
                }
            }
        })
    }
    let registry = EnvelopeRegistry::new();
    let app = Router::new()
        .route("/ws", any(ws))
        .layer(tracked(&registry));
    let addr = common::serve(app).await;

    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("ping"))
        .await
        .unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "ping");

    // Long after the 101 response ended, the session is still in flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let live = registry.snapshot();
    assert_eq!(live.len(), 1, "the upgraded session is tracked");
    assert_eq!(live[0].phase(), Phase::Upgraded);

    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}
    assert!(registry.wait_idle(Duration::from_secs(1)).await);
}

/// The same request made without the token is removed when the 101 response ends: the token is
/// what keeps it, not an accident of the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_without_the_token_is_not_tracked_after_the_handshake() {
    async fn ws(upgrade: WebSocketUpgrade) -> Response {
        upgrade
            .on_upgrade(|mut socket| async move { while let Some(Ok(_)) = socket.recv().await {} })
    }
    let registry = EnvelopeRegistry::new();
    let app = Router::new()
        .route("/ws", any(ws))
        .layer(tracked(&registry));
    let addr = common::serve(app).await;
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert!(registry.wait_idle(Duration::from_secs(1)).await);
    drop(socket);
}

/// A panicking handler still leaves the registry, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_removed_while_unwinding() {
    let registry = EnvelopeRegistry::new();
    let app = Router::new()
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("handler failed on purpose")
                }
                "unreachable"
            }),
        )
        .route("/fast", get(|| async { "ok" }))
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(RegistryLayer::new(registry.clone())),
        );
    let addr = common::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for _ in 0..20 {
        // Without a catch-panic layer hyper closes the connection: an error on the client side.
        assert!(client
            .get(format!("http://{addr}/boom").parse().unwrap())
            .await
            .is_err());
    }
    assert!(registry.wait_idle(Duration::from_secs(1)).await);
    let ok = client
        .request(
            Request::get(format!("http://{addr}/fast"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
