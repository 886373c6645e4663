//! The genro-asgi server serving an axum app, configured by `examples/server.ini`.
//!
//! ```text
//! cargo run --release --example server                  # listens on 127.0.0.1:8000
//! cargo run --release --example server -- --check-config --config examples/server.ini
//! cargo run --release --example server -- --print-config
//!
//! curl -i localhost:8000/                               # x-request-id on every response
//! curl localhost:8000/app                               # reads [application] from the config
//! curl -i localhost:8000/error/not_found                # a registered error: 404 problem+json
//! curl -i localhost:8000/panic                          # 500 with an error id, also in the log
//! curl localhost:8000/slow?ms=15000 &                   # the watchdog warns after 10 s ...
//! curl localhost:8000/inflight                          # ... and it is listed while it runs
//! curl -N 'localhost:8000/stream?chunks=5&delay_ms=500' # streamed; tracked to its last chunk
//! curl -i --data-binary @big.file localhost:8000/upload # over 1 MiB: 413 problem+json
//!
//! # The framework's own errors answer like the application's: problem+json (or HTML, or text,
//! # by Accept), an error id in the body and in x-error-id, a request id, a trace id, a log line
//! # and a count in errors_total.
//! curl -i localhost:8000/nope                           # 404 (no route)
//! curl -i -X DELETE localhost:8000/                     # 405, with its allow header
//! curl -i 'localhost:8000/slow?ms=abc'                  # 400: axum's rejection is the detail
//! curl -i -H 'accept: text/html' localhost:8000/nope    # the same 404 as a page
//! curl -i localhost:8000/users/7                        # the app's own JSON 404: untouched
//! curl -i -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
//!      localhost:8000/nope                              # trace_id 4bf92f35... in the body
//! curl localhost:8000/metrics                           # Prometheus text
//! curl -i localhost:8000/health/ready                   # 503 once a drain has begun
//! websocat ws://localhost:8000/ws                       # echo; closed with 1001 on shutdown
//! curl localhost:8000/blocking?ms=500                   # blocking work on the thread pool
//! curl localhost:8000/job/square?n=12                   # a job in a worker process
//! curl -i localhost:8000/job/crash                      # the worker dies: 502, and is replaced
//! ```
//!
//! Built once, it also runs as `target/release/examples/server --config FILE`.
//!
//! A zero-downtime upgrade: SIGUSR2 starts a new process on the same sockets, and once it is
//! ready this one drains. A client in a loop sees no failure across it:
//!
//! ```text
//! GENRO_ASGI_SERVER_PID_FILE=/tmp/genro.pid target/release/examples/server &
//! (while curl -sf localhost:8000/ -o /dev/null; do :; done; echo "a request failed") &
//! kill -USR2 $(cat /tmp/genro.pid); sleep 1; cat /tmp/genro.pid   # a new pid serves
//! kill -TERM $(cat /tmp/genro.pid)                                  # 503 from /health/ready, then the drain
//! ```
//!
//! With the remote debug console on (`examples/debug.ini`: console on 127.0.0.1:8001, failing
//! requests held for a debugger):
//!
//! ```text
//! cargo run --release --example server -- --config examples/debug.ini
//! curl -i localhost:8000/panic &                        # held: waits for the debugger
//! curl -i localhost:8000/slow?ms=60000 &
//! cargo run --release -p genro-debug -- 127.0.0.1:8001  # or open http://127.0.0.1:8001/
//! Secret: ······                                        # example-debug-secret-change-me
//! genro-debug> ls                                       # both requests, the panic "held"
//! genro-debug> held
//! genro-debug> attach 1f2e3d4c                          # its panic message and annotations
//! genro-debug> continue                                 # curl gets its 500, same error id
//! genro-debug> show 5a6b7c8d                            # the slow one: headers, annotations
//! genro-debug> show 5a6b7c8d --trace                    # what it waits on (see below)
//! genro-debug> cancel 5a6b7c8d                          # curl gets 503 with an error id
//! genro-debug> quit
//! ```
//!
//! `show --trace`, the watchdog's critical report and the drain report carry the async stack of
//! the request's task in a build with task dumps:
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" cargo run --release --features taskdump --example server -- --config examples/debug.ini
//! ```

use std::{process::ExitCode, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{
        ws::{CloseFrame, Message, WebSocketUpgrade},
        Path, Query,
    },
    response::Response,
    routing::{any, get, post},
    Extension, Router,
};
use genro_asgi::{
    registry::InFlightToken,
    server::{
        cli::{self, Command},
        executor::{ExecutorError, ProcessJobs},
    },
    AsgiServer, Envelope, Error, ErrorLayer, Problem, ServerContext,
};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
#[error("no order {0}")]
struct NotFound(u32);

#[derive(Debug, thiserror::Error)]
#[error("order {0} was changed by someone else")]
struct Conflict(u32);

#[derive(Debug, thiserror::Error)]
#[error("field {0} is required")]
struct Invalid(&'static str);

async fn hello(envelope: Envelope) -> String {
    envelope.annotate("greeting", "hello");
    format!("hello, request {}\n", envelope.short_id())
}

async fn application(server: ServerContext) -> String {
    let config = server.config();
    let app = &config.application;
    format!(
        "name: {}\ngreeting: {}\nsecret_key: {} ({} bytes, never shown)\nin flight: {}\n",
        app.app_name().unwrap_or("-"),
        app.get("greeting").unwrap_or("-"),
        app.secret_key().map_or("-".to_owned(), ToString::to_string),
        app.secret_key()
            .map_or(0, genro_asgi::server::config::SecretValue::len),
        server.registry().len(),
    )
}

async fn error(Path(kind): Path<String>) -> Result<String, Error> {
    match kind.as_str() {
        "not_found" => Err(NotFound(7).into()),
        "conflict" => Err(Conflict(7).into()),
        "invalid" => Err(Invalid("email").into()),
        _ => Err(Error::msg("an error nobody registered a handler for")),
    }
}

async fn panic() -> &'static str {
    panic!("this handler panics on purpose")
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: Option<u64>,
}

async fn slow(envelope: Envelope, Query(q): Query<Slow>) -> String {
    let ms = q.ms.unwrap_or(2_000).min(600_000);
    envelope.annotate("sleep_ms", ms.to_string());
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

#[derive(serde::Deserialize)]
struct Stream {
    chunks: Option<u32>,
    delay_ms: Option<u64>,
}

async fn stream(Query(q): Query<Stream>) -> Body {
    let chunks = q.chunks.unwrap_or(5).min(10_000);
    let delay = Duration::from_millis(q.delay_ms.unwrap_or(200).min(60_000));
    Body::from_stream(futures_util::stream::unfold(0, move |n| async move {
        if n == chunks {
            return None;
        }
        tokio::time::sleep(delay).await;
        Some((
            Ok::<_, std::convert::Infallible>(format!("chunk {n}\n")),
            n + 1,
        ))
    }))
}

async fn upload(body: Bytes) -> String {
    format!("received {} bytes\n", body.len())
}

/// The application's own 404, with a JSON body of its own: passed as it is, never rewritten.
async fn user(Path(id): Path<u32>) -> Response {
    let (status, body) = if id == 1 {
        (StatusCode::OK, r#"{"id":1,"name":"ada"}"#.to_owned())
    } else {
        (
            StatusCode::NOT_FOUND,
            format!(r#"{{"message":"no user {id}"}}"#),
        )
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid response")
}

async fn inflight(server: ServerContext) -> String {
    let mut out = String::new();
    for e in server.registry().snapshot() {
        out.push_str(&format!(
            "{} {} {} {:.1}s {} {:?}\n",
            e.short_id(),
            e.method(),
            e.path(),
            e.age().as_secs_f64(),
            e.phase(),
            e.annotations()
        ));
    }
    out
}

/// Echoes messages; when the server starts draining, closes with 1001 (going away).
async fn ws(
    upgrade: WebSocketUpgrade,
    server: ServerContext,
    Extension(token): Extension<InFlightToken>,
) -> Response {
    upgrade.on_upgrade(move |mut socket| async move {
        let _tracked = token;
        loop {
            tokio::select! {
                () = server.shutdown_signal() => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1001,
                            reason: "server shutting down".into(),
                        })))
                        .await;
                    return;
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(msg)) => {
                        if socket.send(msg).await.is_err() {
                            return;
                        }
                    }
                },
            }
        }
    })
}

/// The jobs the process pool runs in worker processes of this same binary.
#[allow(
    clippy::exit,
    reason = "the crash job shows what a dying worker does to the pool"
)]
fn jobs() -> ProcessJobs {
    ProcessJobs::new()
        .job("square", |n: u64| Ok(n.saturating_mul(n)))
        .job("crash", |code: i32| -> Result<(), String> {
            std::process::exit(code)
        })
        .job("sleep", |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms.min(60_000)));
            Ok(ms)
        })
}

/// `/blocking?ms=N`: blocking work on the thread pool.
async fn blocking(server: ServerContext, Query(q): Query<Slow>) -> Result<String, Error> {
    let ms = q.ms.unwrap_or(100).min(60_000);
    server
        .executors()
        .run_in_executor(move || std::thread::sleep(Duration::from_millis(ms)))
        .await?;
    Ok(format!("blocked {ms} ms on the thread pool\n"))
}

/// `/job/{name}?n=N`: a job in a worker process (`[executors] processes` must be set).
async fn job(
    server: ServerContext,
    Path(name): Path<String>,
    Query(q): Query<JobInput>,
) -> Result<String, Error> {
    let n = q.n.unwrap_or(7);
    let result: serde_json::Value = match name.as_str() {
        "crash" => server.executors().run_job("crash", &3).await?,
        other => server.executors().run_job(other, &n).await?,
    };
    Ok(format!("{name}({n}) = {result}\n"))
}

#[derive(serde::Deserialize)]
struct JobInput {
    n: Option<u64>,
}

fn app() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/app", get(application))
        .route("/error/{kind}", get(error))
        .route("/panic", get(panic))
        .route("/slow", get(slow))
        .route("/stream", get(stream))
        .route("/upload", post(upload))
        .route("/users/{id}", get(user))
        .route("/inflight", get(inflight))
        .route("/ws", any(ws))
        .route("/blocking", get(blocking))
        .route("/job/{name}", get(job))
}

fn errors() -> ErrorLayer {
    ErrorLayer::new()
        .handler("not_found", |e: &NotFound, _| {
            Problem::new(StatusCode::NOT_FOUND).detail(e.to_string())
        })
        .handler("conflict", |e: &Conflict, _| {
            Problem::new(StatusCode::CONFLICT).detail(e.to_string())
        })
        .handler("invalid", |e: &Invalid, _| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY).detail(e.to_string())
        })
        .handler("executor", |e: &ExecutorError, _| {
            let status = match e {
                ExecutorError::Full | ExecutorError::ShuttingDown => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ExecutorError::UnknownJob(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_GATEWAY,
            };
            Problem::new(status).detail(e.to_string())
        })
}

fn main() -> ExitCode {
    // A worker process of the process pool runs its jobs here and never returns.
    jobs().serve_if_worker();
    let config = match cli::command("examples/server.ini", std::env::args().skip(1)) {
        Command::Serve(config) => config,
        exit => return exit.report(),
    };
    let server = AsgiServer::from_config(*config)
        .errors(errors())
        .process_jobs(jobs())
        .on_startup(|server| async move {
            let (scheme, addr) = (
                if server.config().ssl.enabled {
                    "https"
                } else {
                    "http"
                },
                server.bound().main.expect("bound before the hooks run"),
            );
            // On stdout, whatever the logging configuration: where to point curl.
            println!(
                "genro example server on {scheme}://{addr}\n  try: curl -i {scheme}://{addr}/   \
                 curl {scheme}://{addr}/metrics   (examples/server.rs lists every route)"
            );
            Ok::<_, std::convert::Infallible>(())
        })
        .on_shutdown(|_server| async {
            tracing::info!("on_shutdown: the drain is over");
            Ok::<_, std::convert::Infallible>(())
        });
    match server.run(app()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
