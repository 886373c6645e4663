//! The error layer over real sockets: panics contained, error hygiene, a crash-proof error path,
//! critical errors reaching a webhook, and gRPC statuses for a real tonic client.

mod common;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{routing::get, Router};
use bytes::Bytes;
use genro_asgi::{
    EnvelopeLayer, EnvelopeRegistry, Error, ErrorLayer, MetricsCollector, MetricsLayer, Problem,
    RegistryLayer,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::ServiceBuilder;

use genro_test_support::errors::{Conflict, Internal, Unavailable, CANARY};

fn error_layer() -> ErrorLayer {
    ErrorLayer::new()
        .handler("conflict", |e: &Conflict, _| {
            Problem::new(StatusCode::CONFLICT).detail(e.to_string())
        })
        .handler("unavailable", |_: &Unavailable, _| {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE)
                .title("Try again shortly")
                .header(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("5"),
                )
        })
}

async fn body_of(
    res: http::Response<hyper::body::Incoming>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Silences the panics these tests cause on purpose (their messages say "exploded"); any other
/// panic, such as a failed assertion, is still printed.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !text.contains("exploded") {
                default(info);
            }
        }));
    });
}

/// Panics contained: 1,000 concurrent panicking handlers each get a 500 carrying the error id;
/// the panic counter rises by exactly 1,000; the registry returns to 0; the next 1,000 normal
/// requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_panics_are_contained() {
    quiet_expected_panics();
    let registry = EnvelopeRegistry::new();
    let collector = MetricsCollector::new();
    let errors = error_layer();
    errors.register_metrics(&mut collector.registry());
    let started = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/panic",
            get({
                let started = started.clone();
                move || async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    // Panic while others are in flight too.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if true {
                        panic!("handler exploded");
                    }
                    "unreachable"
                }
            }),
        )
        .route("/ok", get(|| async { "ok" }))
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(RegistryLayer::new(registry.clone()))
                .layer(MetricsLayer::new(&collector))
                .layer(errors),
        );
    let addr = common::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let res = client
                    .get(format!("http://{addr}/panic").parse().unwrap())
                    .await
                    .unwrap();
                body_of(res).await
            })
        })
        .collect();
    for task in tasks {
        let (status, headers, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let id = headers["x-error-id"].to_str().unwrap();
        assert_eq!(body["error_id"], id);
        assert!(!body.to_string().contains("exploded"));
    }
    assert_eq!(started.load(Ordering::SeqCst), 1_000);
    let text = collector.render();
    assert!(
        text.contains(r#"errors_total{kind="panic",type="panic"} 1000"#),
        "{text}"
    );
    assert!(
        registry.wait_idle(Duration::from_secs(1)).await,
        "{} left in the registry",
        registry.len()
    );

    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(format!("http://{addr}/ok").parse().unwrap())
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            StatusCode::OK,
            "no poisoned lock after the panics"
        );
    }
}

/// Error hygiene: every registered error type maps to its status and body; with
/// show_traceback off a 5xx body holds only the title, the status and the error id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_hygiene_over_a_socket() {
    let app = Router::new()
        .route(
            "/conflict",
            get(|| async { Err::<String, Error>(Conflict.into()) }),
        )
        .route(
            "/unavailable",
            get(|| async { Err::<String, Error>(Unavailable.into()) }),
        )
        .route(
            "/internal",
            get(|| async { Err::<String, Error>(Internal.into()) }),
        )
        .route(
            "/debug",
            get(|| async {
                let config = vec![("secret_key", CANARY)];
                Err::<String, Error>(Error::msg(format!("bad state: {config:?}")))
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(error_layer()),
        );
    let addr = common::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            body_of(
                client
                    .get(format!("http://{addr}{path}").parse().unwrap())
                    .await
                    .unwrap(),
            )
            .await
        }
    };

    let (status, _, body) = get("/conflict").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "version mismatch");
    assert_eq!(body["status"], 409);

    let (status, headers, body) = get("/unavailable").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(body["title"], "Try again shortly");

    for path in ["/internal", "/debug"] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["error_id", "status", "title"], "{path}: {body}");
        assert_eq!(body["error_id"], headers["x-error-id"].to_str().unwrap());
        let text = body.to_string();
        for leak in [
            CANARY,
            "/etc/app",
            "secret_key",
            "connect failed",
            "bad state",
        ] {
            assert!(!text.contains(leak), "{path} leaked {leak}");
        }
    }
}

/// Injects failures into a gRPC service from the request's `x-fault` metadata, standing in for a
/// method that panics or fails below the error layer.
#[derive(Clone)]
struct Fault<S>(S);

impl<S, B> tower::Service<Request<B>> for Fault<S>
where
    S: tower::Service<Request<B>, Error = Infallible> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match req
            .headers()
            .get("x-fault")
            .map(|v| v.as_bytes().to_vec())
            .as_deref()
        {
            Some(b"panic") => panic!("grpc method exploded"),
            Some(b"timeout") => {
                Box::pin(async { Err(tower::timeout::error::Elapsed::new().into()) })
            }
            _ => {
                let fut = self.0.call(req);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_clients_get_a_status_with_the_error_id() {
    use tonic::Code;
    use tonic_health::pb::HealthCheckRequest;

    quiet_expected_panics();
    let (_addr, mut client) = tonic_health_server!(ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(ErrorLayer::new())
        .layer(tower::layer::layer_fn(Fault)));

    let ok = client
        .check(HealthCheckRequest {
            service: "genro.Test".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        ok.get_ref().status,
        tonic_health::ServingStatus::Serving as i32
    );

    for (fault, code) in [
        ("panic", Code::Internal),
        ("timeout", Code::DeadlineExceeded),
    ] {
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: "genro.Test".into(),
        });
        req.metadata_mut().insert("x-fault", fault.parse().unwrap());
        let status = client.check(req).await.unwrap_err();
        assert_eq!(status.code(), code, "{fault}: {status:?}");
        let id = status
            .metadata()
            .get("x-error-id")
            .expect("x-error-id")
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 8);
        assert!(
            status.message().contains(&format!("error id {id}")),
            "{fault}: {}",
            status.message()
        );
        assert!(!status.message().contains("exploded"));
        // And in the typed field gRPC clients read: google.rpc.RequestInfo.
        let info = tonic_types::StatusExt::get_details_request_info(&status)
            .expect("a RequestInfo detail");
        assert_eq!(info.request_id, id);
    }
}

/// The error layer's notifier path posts critical errors to a real local webhook: a panic
/// (critical by default) arrives with its error id; a handled 4xx does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_errors_reach_the_webhook_notifier() {
    use genro_asgi::WebhookNotifier;

    quiet_expected_panics();
    // The webhook endpoint: a real HTTP server recording what it receives.
    let (hook_addr, received) = common::webhook().await;
    let webhook = WebhookNotifier::builder(&format!("http://{hook_addr}/hook"))
        .unwrap()
        .build()
        .unwrap();

    // Critical errors reach the webhook through the layer's notification path.
    let errors = error_layer().notifier(webhook.clone());
    let app = Router::new()
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("exploded for the webhook");
                }
                "unreachable"
            }),
        )
        .route(
            "/conflict",
            get(|| async { Err::<String, Error>(Conflict.into()) }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(errors),
        );
    let addr = common::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let (status, _, _) = body_of(
        client
            .get(format!("http://{addr}/conflict").parse().unwrap())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, headers, _) = body_of(
        client
            .get(format!("http://{addr}/boom").parse().unwrap())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let id = headers["x-error-id"].to_str().unwrap().to_owned();

    for _ in 0..100 {
        if webhook.outcome_count(genro_asgi::notify::Outcome::Sent) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = received.lock().unwrap();
    assert_eq!(
        received.len(),
        1,
        "only the critical error is posted: {received:?}"
    );
    assert_eq!(received[0]["kind"], "critical_error");
    assert_eq!(received[0]["details"]["error_id"], id.as_str());
    assert_eq!(received[0]["details"]["error_type"], "panic");
    assert_eq!(received[0]["request"]["path"], "/boom");
}

#[derive(Debug, thiserror::Error)]
#[error("an error whose handler is broken")]
struct Cursed;

/// The error path cannot crash: a panicking error handler, over a real socket and under load,
/// still gives every client one 500 carrying its error id; every panic is counted, and the
/// registry empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_error_handler_still_answers_every_client() {
    quiet_expected_panics();
    let registry = EnvelopeRegistry::new();
    let collector = MetricsCollector::new();
    let errors = ErrorLayer::new().handler("cursed", |_: &Cursed, _| -> Problem {
        panic!("the handler itself is broken")
    });
    errors.register_metrics(&mut collector.registry());
    let app = Router::new()
        .route(
            "/cursed",
            get(|| async { Err::<String, Error>(Cursed.into()) }),
        )
        .layer(genro_asgi::GenroLayer::new(&registry, &collector).errors(errors));
    let addr = common::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                body_of(
                    client
                        .get(format!("http://{addr}/cursed").parse().unwrap())
                        .await
                        .expect("an answer, not a reset connection"),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        let (status, headers, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error_id"], headers["x-error-id"].to_str().unwrap());
    }
    let text = collector.render();
    assert!(
        text.contains(r#"errors_total{kind="panic",type="error_path_panic"} 200"#),
        "{text}"
    );
    assert!(registry.wait_idle(Duration::from_secs(1)).await);
}
