//! Instruction-count harness: calls an axum hello `Router` in-process N times through one stack.
//!
//! Run by `benches/callgrind.sh` under `valgrind --tool=callgrind` at two values of N; the
//! difference divided by the difference in N is the cost of one request, free of start-up. Every
//! stack is applied in one `Router::layer(ServiceBuilder…)` call, and compared with the same call
//! holding `tower::layer::util::Identity`, because axum re-boxes every route on each `layer` call.
//!
//! Each router is converted with `with_state(())` before it is called, as `axum::serve` does for
//! every connection. Called unconverted, a `Router<()>` turns its handler into a route and applies
//! the layers again on every request, which costs a layer that holds state (an `Arc` of its
//! settings) one more allocation per request than `Identity`; a served app never pays it.
//!
//! ```text
//! instructions <stack> <n>     run n requests through <stack>
//! instructions sizes           print per-request memory figures
//!
//! A stack's name may end in `+headers` (curl's three headers), `+traceparent`, `+missing` (a
//! request for a route that does not exist: a 404) and `+logged` (log lines formatted into a
//! sink, as the server's text log would write them).
//! instructions                 smoke run of every stack (what `cargo test --benches` does)
//! ```
#![allow(clippy::too_many_lines)] // a test reads as one scenario

use std::{convert::Infallible, time::Duration};

use axum::{
    body::Body,
    extract::{MatchedPath, Request as AxumRequest},
    middleware::{self, Next},
    response::Response as AxumResponse,
    routing::get,
    Router,
};
use genro_asgi::{
    EnvelopeLayer, EnvelopeRegistry, MetricsCollector, MetricsLayer, RegistryLayer, RequestEnvelope,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tower::{layer::util::Identity, Service, ServiceBuilder, ServiceExt};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

/// The stacks measured, by name. Each later genro crate adds its layer to `genro`.
/// `noop2` (two do-nothing `map_response` layers) shows what wrapping alone costs;
/// `envelope-noid` is the envelope layer without the response id header; `user-metrics` is the
/// prometheus-client middleware of the `tower-http` stack alone, to compare with `metrics`;
/// `genro` is every genro layer of the request path, and `genro-without-errors` the same less the
/// error layer, so that the error layer's cost on the success path shows as the difference.
const STACKS: &[&str] = &[
    "identity",
    "noop2",
    "noop-body",
    "floor-envelope",
    "envelope",
    "envelope-noid",
    "registry",
    "envelope+registry",
    "metrics",
    "user-metrics",
    "errors",
    "errors-framework",
    "errors-unlimited",
    "envelope-start",
    "genro-without-errors",
    "genro",
    "genro-layer",
    "genro+watchdog",
    "genro-debug",
    "tower-http",
    "histogram-none",
    "histogram-genro",
    "histogram-prometheus",
];

async fn hello() -> &'static str {
    "Hello, World!"
}

fn router() -> Router {
    Router::new().route("/hello", get(hello))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone)]
struct UserMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
}

/// A prometheus-client metrics middleware as users write it today with `axum::middleware`.
async fn user_metrics(
    axum::extract::State(m): axum::extract::State<UserMetrics>,
    req: AxumRequest,
    next: Next,
) -> AxumResponse {
    let start = std::time::Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let labels = Labels {
        method,
        route,
        status: res.status().as_u16(),
    };
    m.requests.get_or_create(&labels).inc();
    m.latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    res
}

fn user_metrics_state() -> UserMetrics {
    let metrics = UserMetrics {
        requests: Family::default(),
        latency: Family::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 12,
            ))
        }),
    };
    let mut registry = Registry::default();
    registry.register("http_requests", "requests", metrics.requests.clone());
    registry.register(
        "http_request_duration_seconds",
        "latency",
        metrics.latency.clone(),
    );
    metrics
}

/// Every genro layer of the request path, in one `Router::layer` call.
fn genro_stack(registry: EnvelopeRegistry) -> Router {
    let collector = MetricsCollector::new();
    router().layer(
        ServiceBuilder::new()
            .layer(EnvelopeLayer::new())
            .layer(RegistryLayer::new(registry))
            .layer(MetricsLayer::new(&collector))
            .layer(genro_asgi::ErrorLayer::new()),
    )
}

pin_project_lite::pin_project! {
    /// A body wrapper that only forwards (frames, end of stream and size hint).
    struct PassBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B: http_body::Body> http_body::Body for PassBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

fn build(stack: &str) -> Router {
    match stack {
        "identity" => router().layer(ServiceBuilder::new().layer(Identity::new())),
        "envelope" => router().layer(ServiceBuilder::new().layer(EnvelopeLayer::new())),
        "noop2" => router().layer(
            ServiceBuilder::new()
                .map_response(|r: AxumResponse| r)
                .map_response(|r: AxumResponse| r),
        ),
        // The least any layer that must see the end of the body pays: a pass-through body
        // wrapper, which makes axum box the response body again.
        "noop-body" => router().layer(
            ServiceBuilder::new().map_response(|r: AxumResponse| r.map(|inner| PassBody { inner })),
        ),
        // What the envelope layer must do, written with http and std alone: an `Arc` of the
        // envelope's size in the request extensions, and a fresh UUID in the response header.
        // No genro code runs: it is the floor under the envelope layer's cost.
        "floor-envelope" => router().layer(
            ServiceBuilder::new()
                .map_request(|mut r: AxumRequest| {
                    let envelope = std::sync::Arc::new([0u64; 38]);
                    r.extensions_mut().insert(envelope);
                    r
                })
                .map_response(|mut r: AxumResponse| {
                    let id = uuid::Uuid::from_u128(fastrand::u128(..));
                    let mut buf = uuid::Uuid::encode_buffer();
                    let text = id.hyphenated().encode_lower(&mut buf);
                    if let http::header::Entry::Vacant(slot) = r.headers_mut().entry(X_REQUEST_ID) {
                        slot.insert(http::HeaderValue::from_str(text).expect("uuid text"));
                    }
                    r
                }),
        ),
        "envelope-noid" => router().layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new().response_id(genro_asgi::ResponseId::None)),
        ),
        "registry" => {
            router().layer(ServiceBuilder::new().layer(RegistryLayer::new(EnvelopeRegistry::new())))
        }
        "envelope+registry" => router().layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(RegistryLayer::new(EnvelopeRegistry::new())),
        ),
        "metrics" => {
            router().layer(ServiceBuilder::new().layer(MetricsLayer::new(&MetricsCollector::new())))
        }
        "user-metrics" => router().layer(ServiceBuilder::new().layer(
            middleware::from_fn_with_state(user_metrics_state(), user_metrics),
        )),
        "errors" => router().layer(ServiceBuilder::new().layer(genro_asgi::ErrorLayer::new())),
        // The framework's errors in the error format: the success path pays a status check.
        "errors-framework" => router().layer(
            ServiceBuilder::new().layer(genro_asgi::ErrorLayer::new().framework_errors(true)),
        ),
        // Every client-error line written: with `+missing+logged`, what the bound on them saves.
        "errors-unlimited" => router().layer(
            ServiceBuilder::new().layer(
                genro_asgi::ErrorLayer::new()
                    .framework_errors(true)
                    .client_error_lines_per_second(None),
            ),
        ),
        // A trace started for each request without a `traceparent` (the server's default).
        "envelope-start" => {
            router().layer(ServiceBuilder::new().layer(EnvelopeLayer::new().start_traces(true)))
        }
        "genro-without-errors" => router().layer(
            ServiceBuilder::new()
                .layer(EnvelopeLayer::new())
                .layer(RegistryLayer::new(EnvelopeRegistry::new()))
                .layer(MetricsLayer::new(&MetricsCollector::new())),
        ),
        "genro" => genro_stack(EnvelopeRegistry::new()),
        // The same four parts as one layer.
        "genro-layer" => router().layer(ServiceBuilder::new().layer(genro_asgi::GenroLayer::new(
            &EnvelopeRegistry::new(),
            &MetricsCollector::new(),
        ))),
        // `genro-layer` as the AsgiServer runs it with the debug console on and no request
        // held: headers kept for `show`, the hold observer installed, cancellation inside.
        "genro-debug" => {
            let holds = genro_asgi::Holds::new(Duration::from_secs(30), 8);
            router().layer(
                ServiceBuilder::new()
                    .layer(
                        genro_asgi::GenroLayer::new(
                            &EnvelopeRegistry::new(),
                            &MetricsCollector::new(),
                        )
                        .envelope(EnvelopeLayer::new().keep_headers(true))
                        .errors(holds.install(genro_asgi::ErrorLayer::new())),
                    )
                    .layer(genro_asgi::CancelLayer::new()),
            )
        }
        // The same stack with a watchdog scanning the registry every 10 ms, on a thread of its
        // own: callgrind.sh counts the main thread only, so this is the request path's cost
        // while scans run against the same registry.
        "genro+watchdog" => {
            let registry = EnvelopeRegistry::new();
            let watched = registry.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let _handle = genro_asgi::Watchdog::new(
                        watched,
                        genro_asgi::WatchdogConfig {
                            interval: Duration::from_millis(10),
                            timeout: Duration::from_secs(60),
                            critical: Duration::from_secs(300),
                        },
                    )
                    .spawn()
                    .expect("valid thresholds");
                    std::future::pending::<()>().await;
                });
            });
            genro_stack(registry)
        }
        "tower-http" => {
            let metrics = user_metrics_state();
            router().layer(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::x_request_id())
                    .layer(TraceLayer::new_for_http())
                    .layer(CatchPanicLayer::new())
                    .layer(TimeoutLayer::with_status_code(
                        StatusCode::REQUEST_TIMEOUT,
                        Duration::from_secs(30),
                    ))
                    .layer(middleware::from_fn_with_state(metrics, user_metrics)),
            )
        }
        other => panic!("unknown stack {other:?}; known: {STACKS:?}"),
    }
}

/// Two histogram observations per iteration, as the metrics layer makes per request (duration
/// and size): prometheus-client's `Histogram` (a mutex per observation) against the metrics
/// crate's own (atomic buckets). `histogram-none` is the loop alone.
fn observe(stack: &str, n: usize) {
    const BOUNDS: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let ours = (
        genro_asgi::metrics::plumbing::Histogram::new(BOUNDS),
        genro_asgi::metrics::plumbing::Histogram::new(BOUNDS),
    );
    let theirs = (
        Histogram::new(BOUNDS.iter().copied()),
        Histogram::new(BOUNDS.iter().copied()),
    );
    for i in 0..n {
        let v = std::hint::black_box(0.001 * (i % 7) as f64);
        match stack {
            "histogram-genro" => {
                ours.0.observe(v);
                ours.1.observe(v * 1000.0);
            }
            "histogram-prometheus" => {
                theirs.0.observe(v);
                theirs.1.observe(v * 1000.0);
            }
            _ => {
                std::hint::black_box(v);
            }
        }
    }
}

async fn run(stack: &str, n: usize) {
    if stack.starts_with("histogram-") {
        observe(stack, n);
        return;
    }
    // `STACK+headers`: the request carries the three headers curl sends, which matters to a
    // stack that copies them (the debug console keeps them for `show`).
    let (stack, headers) = stack
        .strip_suffix("+headers")
        .map_or((stack, false), |s| (s, true));
    // `STACK+traceparent`: the request carries a valid W3C `traceparent`.
    let (stack, traceparent) = stack
        .strip_suffix("+traceparent")
        .map_or((stack, false), |s| (s, true));
    // `STACK+logged`: log lines are formatted as the server's text log does, into a sink.
    let (stack, logged) = stack
        .strip_suffix("+logged")
        .map_or((stack, false), |s| (s, true));
    let _logging = logged.then(|| {
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .with_ansi(false)
                .finish(),
        )
    });
    // `STACK+missing`: the request is for a route that does not exist (a 404).
    let (stack, missing) = stack
        .strip_suffix("+missing")
        .map_or((stack, false), |s| (s, true));
    let path = if missing { "/missing" } else { "/hello" };
    // Routes made once, as `axum::serve` makes them (see the crate documentation).
    let mut svc = build(stack).with_state::<()>(());
    for _ in 0..n {
        // A static URI, as hyper gives shared bytes: cloning it costs no allocation.
        let mut req = Request::get(http::Uri::from_static(path));
        if headers {
            req = req
                .header(
                    http::header::HOST,
                    http::HeaderValue::from_static("127.0.0.1:8000"),
                )
                .header(
                    http::header::USER_AGENT,
                    http::HeaderValue::from_static("curl/7.88.1"),
                )
                .header(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
        }
        if traceparent {
            req = req.header(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
        }
        let req = req.body(Body::empty()).expect("request");
        let res = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .expect("ready")
            .call(req)
            .await
            .unwrap_or_else(|e: Infallible| match e {});
        if missing {
            assert_eq!(res.status(), StatusCode::NOT_FOUND);
            res.into_body().collect().await.expect("body");
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body.len(), 13);
    }
}

fn sizes() {
    use std::mem::size_of;
    type Rf = axum::routing::future::RouteFuture<Infallible>;
    eprintln!(
        "RouteFuture {} Request {} Response {}",
        size_of::<Rf>(),
        size_of::<Request<Body>>(),
        size_of::<AxumResponse>()
    );
    eprintln!(
        "errors fut {}",
        size_of::<genro_asgi::errors::ResponseFuture<Rf, Body>>()
    );
    eprintln!(
        "metrics fut {}",
        size_of::<genro_asgi::metrics::ResponseFuture<Rf>>()
    );
    eprintln!(
        "registry fut {}",
        size_of::<genro_registry::ResponseFuture<Rf>>()
    );
    eprintln!(
        "envelope fut {}",
        size_of::<genro_envelope::ResponseFuture<Rf>>()
    );
    // Arc's heap block is the value plus two reference counts.
    let envelope = size_of::<RequestEnvelope>() + 2 * size_of::<usize>();
    // A slab slot holds the Arc pointer behind an enum tag; the guard is a registry handle and a
    // key, held by the response future and then the body.
    let slot = size_of::<usize>() + size_of::<std::sync::Arc<RequestEnvelope>>();
    let guard = size_of::<genro_asgi::InFlight>();
    println!("envelope (Arc block)     {envelope} bytes");
    println!("registry slot            {slot} bytes");
    println!("registry guard           {guard} bytes");
    println!(
        "total per request        {} bytes (budget 512)",
        envelope + slot + guard
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.as_slice() {
        [cmd] if cmd == "sizes" => sizes(),
        [stack, n] => rt.block_on(run(stack, n.parse().expect("n is a number"))),
        [] => {
            for stack in STACKS {
                rt.block_on(run(stack, 10));
            }
            sizes();
            println!("smoke run of {} stacks: ok", STACKS.len());
        }
        _ => panic!("usage: instructions [<stack> <n> | sizes]"),
    }
}
