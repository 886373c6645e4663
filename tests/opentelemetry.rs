//! With the `opentelemetry` feature and a tracing-opentelemetry subscriber, the server's request
//! span joins the client's W3C trace: the exported span has the client's trace id and the
//! client's span as its parent; a request without one gets the trace OpenTelemetry starts, and
//! its error body names that trace. A real server on loopback, a real client, OpenTelemetry's
//! in-memory exporter.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

use std::time::Duration;

use bytes::Bytes;
use genro_asgi::{server::Config, AsgiServer};
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_span_joins_the_clients_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let config = Config::from_ini_str(
        "[server]\nport = 0\n[watchdog]\nenabled = false\n",
        "otel.ini",
        Vec::new(),
    )
    .unwrap();
    let server = AsgiServer::from_config(config).without_logging();
    let handle = server.handle();
    // The handler answers with what its envelope says of the trace.
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|envelope: genro_asgi::Envelope| async move {
            let trace = envelope.trace_context().expect("a trace");
            format!(
                "{} {} {}",
                trace.trace_id(),
                trace.span_id(),
                trace.parent_id().map(|p| p.to_string()).unwrap_or_default()
            )
        }),
    );
    let mut bodies = Vec::new();
    let serving = tokio::spawn(server.serve(app));
    let addr = handle.bound().await.expect("bound").main.unwrap();

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for (path, traceparent) in [
        ("/", Some(format!("00-{TRACE}-{PARENT}-01"))),
        ("/nope", None),
    ] {
        let mut request = http::Request::get(format!("http://{addr}{path}"));
        if let Some(traceparent) = &traceparent {
            request = request.header("traceparent", traceparent);
        }
        let response = client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        // The span ends with the response body: read it.
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        bodies.push(String::from_utf8_lossy(&body).into_owned());
    }

    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let requests: Vec<_> = spans.iter().filter(|s| s.name == "request").collect();
    assert_eq!(requests.len(), 2, "{spans:#?}");
    let joined = requests
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == TRACE)
        .unwrap_or_else(|| panic!("no span in the client's trace: {requests:#?}"));
    assert_eq!(joined.parent_span_id.to_string(), PARENT);
    assert!(joined.parent_span_is_remote);
    // The envelope names the exported span as the request's own: the parent of the calls it
    // makes (the webhook's child traceparent).
    assert_eq!(
        bodies[0],
        format!("{TRACE} {} {PARENT}", joined.span_context.span_id())
    );
    // The one without a traceparent is a root of a trace of its own.
    let root = requests
        .iter()
        .find(|s| s.span_context.trace_id().to_string() != TRACE)
        .unwrap();
    assert_eq!(
        root.parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "{root:#?}"
    );
    // Its 404 names the trace that was exported, not one of its own.
    let problem: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(
        problem["trace_id"],
        root.span_context.trace_id().to_string(),
        "{problem}"
    );
}
