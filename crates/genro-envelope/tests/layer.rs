//! Service-level tests of EnvelopeLayer (oneshot); the socket-level ones are in the root tests/.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{extract::ConnectInfo, routing::get, Router};
use genro_envelope::{ClientAddr, Envelope, EnvelopeLayer, RequestEnvelope, ResponseId};
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{service_fn, Layer, ServiceExt};

async fn seen_envelope(
    layer: EnvelopeLayer,
    req: Request<()>,
) -> (Response<()>, Arc<RequestEnvelope>) {
    let slot = Arc::new(Mutex::new(None));
    let svc = layer.layer(service_fn({
        let slot = slot.clone();
        move |req: Request<()>| {
            let env = RequestEnvelope::from_request(&req).cloned();
            *slot.lock().unwrap() = env;
            async { Ok::<_, Infallible>(Response::new(())) }
        }
    }));
    let res = svc.oneshot(req).await.unwrap();
    let env = slot
        .lock()
        .unwrap()
        .take()
        .expect("the inner service saw an envelope");
    (res, env)
}

#[tokio::test]
async fn echoes_a_valid_external_id_and_fills_the_envelope() {
    let req = Request::post("/orders/9?x=1")
        .header("x-request-id", "abc.DEF:12_3-4")
        .extension(ClientAddr("10.1.2.3:4567".parse().unwrap()))
        .body(())
        .unwrap();
    let (res, env) = seen_envelope(EnvelopeLayer::new(), req).await;
    assert_eq!(res.headers()["x-request-id"], "abc.DEF:12_3-4");
    assert_eq!(env.external_id(), Some("abc.DEF:12_3-4"));
    assert_eq!(env.method(), http::Method::POST);
    assert_eq!(env.path(), "/orders/9");
    assert_eq!(env.client(), Some("10.1.2.3:4567".parse().unwrap()));
    assert_eq!(env.internal_id().get_version_num(), 7);
}

#[tokio::test]
async fn an_invalid_external_id_is_replaced_by_the_internal_id_and_counted() {
    let layer = EnvelopeLayer::new();
    let req = Request::get("/")
        .header("x-request-id", "has space")
        .body(())
        .unwrap();
    let (res, env) = seen_envelope(layer.clone(), req).await;
    assert_eq!(env.external_id(), None);
    assert_eq!(
        res.headers()["x-request-id"],
        env.internal_id_string().as_str()
    );
    assert_eq!(layer.invalid_external_ids(), 1);

    let mut registry = Registry::default();
    layer.register_metrics(&mut registry);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(text.contains("request_id_invalid_total 1"), "{text}");
}

#[tokio::test]
async fn response_id_modes_and_custom_header() {
    let req = || {
        Request::get("/")
            .header("x-correlation-id", "upstream-1")
            .body(())
            .unwrap()
    };
    let custom = HeaderName::from_static("x-correlation-id");

    let (res, env) = seen_envelope(EnvelopeLayer::new().header(custom.clone()), req()).await;
    assert_eq!(res.headers()["x-correlation-id"], "upstream-1");
    assert_eq!(env.external_id(), Some("upstream-1"));
    assert!(!res.headers().contains_key("x-request-id"));

    let layer = EnvelopeLayer::new()
        .header(custom.clone())
        .response_id(ResponseId::Internal);
    let (res, env) = seen_envelope(layer, req()).await;
    assert_eq!(
        res.headers()["x-correlation-id"],
        env.internal_id_string().as_str()
    );

    let layer = EnvelopeLayer::new()
        .header(custom)
        .response_id(ResponseId::None);
    let (res, _) = seen_envelope(layer, req()).await;
    assert!(!res.headers().contains_key("x-correlation-id"));
}

/// A response id is new on every response: it is marked sensitive, so HTTP/2 sends it as a
/// literal never indexed in HPACK's dynamic table; an echoed external id too.
#[tokio::test]
async fn the_response_id_is_marked_never_to_be_indexed() {
    let (res, _) = seen_envelope(EnvelopeLayer::new(), Request::get("/").body(()).unwrap()).await;
    assert!(res.headers()["x-request-id"].is_sensitive());
    let req = Request::get("/")
        .header("x-request-id", "upstream-7")
        .body(())
        .unwrap();
    let (res, _) = seen_envelope(EnvelopeLayer::new(), req).await;
    assert_eq!(res.headers()["x-request-id"], "upstream-7");
    assert!(res.headers()["x-request-id"].is_sensitive());
}

#[tokio::test]
async fn an_id_header_set_by_the_handler_is_kept() {
    let svc = EnvelopeLayer::new().layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("x-request-id", "mine")
                .body(())
                .unwrap(),
        )
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "mine");
}

#[tokio::test]
async fn axum_extractor_route_template_and_connect_info() {
    async fn handler(env: Envelope) -> String {
        format!(
            "{}|{}|{:?}",
            env.short_id(),
            env.route().unwrap_or("-"),
            env.client()
        )
    }
    let app = Router::new()
        .route("/users/{id}", get(handler))
        .layer(EnvelopeLayer::new());
    let req = Request::get("/users/42")
        .extension(ConnectInfo::<SocketAddr>("127.0.0.9:1000".parse().unwrap()))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = std::str::from_utf8(&body).unwrap();
    let parts: Vec<_> = body.split('|').collect();
    assert!(
        id.ends_with(parts[0]),
        "short id {} is the tail of {id}",
        parts[0]
    );
    assert_eq!(parts[1], "/users/{id}");
    assert_eq!(parts[2], "Some(127.0.0.9:1000)");
}

#[tokio::test]
async fn the_extractor_without_the_layer_says_how_to_fix_it() {
    async fn handler(_env: Envelope) -> &'static str {
        "unreachable"
    }
    async fn optional(env: Option<Envelope>) -> &'static str {
        if env.is_some() {
            "some"
        } else {
            "none"
        }
    }
    let app = Router::new()
        .route("/", get(handler))
        .route("/opt", get(optional));
    let res = app
        .clone()
        .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains("add genro_envelope::EnvelopeLayer"));
    let res = app
        .oneshot(
            Request::get("/opt")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "none");
}

#[test]
fn ids_are_recorded_on_the_current_span() {
    let buf = genro_test_support::LogBuffer::default();
    let subscriber = buf.subscriber();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let id = tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "request",
            request_id = tracing::field::Empty,
            external_id = tracing::field::Empty
        );
        let _entered = span.enter();
        let svc = EnvelopeLayer::new().layer(service_fn(|_req: Request<()>| async {
            tracing::info!("handled");
            Ok::<_, Infallible>(Response::new(()))
        }));
        let req = Request::get("/")
            .header("x-request-id", "span-ext-1")
            .body(())
            .unwrap();
        let res = rt.block_on(svc.oneshot(req)).unwrap();
        res.headers()["x-request-id"].to_str().unwrap().to_owned()
    });
    let out = buf.contents();
    assert_eq!(id, "span-ext-1");
    assert!(
        out.contains("external_id=\"span-ext-1\"") || out.contains("external_id=span-ext-1"),
        "{out}"
    );
    assert!(out.contains("request_id="), "{out}");
}

#[tokio::test]
async fn a_second_envelope_layer_keeps_the_first_envelope() {
    let seen = Arc::new(Mutex::new(None));
    let svc = tower::ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(EnvelopeLayer::new().response_id(ResponseId::Internal))
        .service(service_fn({
            let seen = seen.clone();
            move |req: Request<()>| {
                *seen.lock().unwrap() = RequestEnvelope::from_request(&req).cloned();
                async { Ok::<_, Infallible>(Response::new(())) }
            }
        }));
    let req = Request::get("/")
        .header("x-request-id", "ext-1")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let envelope = seen.lock().unwrap().take().unwrap();
    // The outer layer's envelope reached the handler, and the outer layer's policy (echo) set
    // the header: the inner layer neither made a second envelope nor wrote its internal id.
    assert_eq!(envelope.external_id(), Some("ext-1"));
    assert_eq!(res.headers().get_all("x-request-id").iter().count(), 1);
    assert_eq!(res.headers()["x-request-id"], "ext-1");
}
