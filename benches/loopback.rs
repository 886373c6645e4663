//! The servers of the loopback comparison: the same axum hello app served many ways (the
//! actix-web peers are in `benches/peers`, a workspace of its own).
//!
//! ```text
//! loopback <mode> <port>
//!   hyper        bare hyper-util serving a hello service (the ceiling)
//!   axum         axum::serve, no layers (the anchor)
//!   axum-timer   the axum app on hyper-util with a header read timeout, no layers: what the
//!                always-on header timeout costs by itself
//!   genro        axum::serve, the router behind GenroLayer with its defaults
//!   asgi         AsgiServer, the whole stack, the watchdog running, logs off
//!   asgi-seed    AsgiServer as users run it: `run()` on the seed's `server.ini` (metrics on an
//!                export port, a log file at WARNING, the watchdog, the webhook notifier), one
//!                worker, `runtime = per_core`; `asgi-seed-w2`: two workers;
//!                `asgi-seed-ws`, `asgi-seed-ws-w2`: `runtime = work_stealing`.
//!                `LOOPBACK_SEED` adds overrides (benches/seed.sh turns parts off with it)
//!   axum-mt      axum::serve on a multi-threaded runtime of one worker
//!   asgi-logged  AsgiServer as above with INFO logging to a file (a span per request)
//!   floor        axum::serve, the router behind the floor layer: what GenroLayer must do,
//!                written with http and std alone (benches/floor)
//!   floor-server the floor layer, served by a hyper-util loop that also does what the
//!                AsgiServer must do per request, with http and std alone
//! ```
//!
//! Each but `asgi-seed*` and `axum-mt` runs on a current-thread tokio runtime until SIGINT, then
//! exits cleanly (so callgrind writes its profile). `benches/loopback.sh` drives them with wrk and h2load.

#[path = "floor/mod.rs"]
mod floor;

use std::{convert::Infallible, net::SocketAddr};

use axum::{routing::get, Router};
use bytes::Bytes;
use http_body_util::Full;

async fn hello() -> &'static str {
    "Hello, World!"
}

fn app() -> Router {
    Router::new().route("/", get(hello))
}

async fn bare_hyper(addr: SocketAddr) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo},
        server::conn::auto::Builder,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                    b"Hello, World!",
                ))))
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve(mode: &str, port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match mode {
        "hyper" => bare_hyper(addr).await,
        "axum-timer" => {
            use hyper_util::{
                rt::{TokioExecutor, TokioIo, TokioTimer},
                server::conn::auto::Builder,
                service::TowerToHyperService,
            };
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            let app = app().with_state::<()>(());
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10));
            let builder = std::sync::Arc::new(builder);
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                let _ = stream.set_nodelay(true);
                let (builder, app) = (builder.clone(), app.clone());
                tokio::spawn(async move {
                    let _ = builder
                        .serve_connection_with_upgrades(
                            TokioIo::new(stream),
                            TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        }
        "axum" => {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            axum::serve(listener, app()).await.expect("serve");
        }
        "floor" => {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            axum::serve(listener, floor::app(app()))
                .await
                .expect("serve");
        }
        "floor-server" => {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            floor::serve(listener, floor::app(app()).with_state(()), 1 << 20).await;
        }
        "genro" => {
            let registry = genro_asgi::EnvelopeRegistry::new();
            let collector = genro_asgi::MetricsCollector::new();
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            let app = app().layer(genro_asgi::GenroLayer::new(&registry, &collector));
            axum::serve(listener, app).await.expect("serve");
        }
        "asgi" | "asgi-logged" => {
            let mut ini = asgi_ini(port);
            let logged = mode == "asgi-logged";
            if logged {
                let file = std::env::temp_dir().join(format!("genro-loopback-{port}.log"));
                ini.push_str(&format!(
                    "[logging]\nlevel = INFO\nformat = compact\nfile = {}\n",
                    file.display()
                ));
            }
            let config = genro_asgi::Config::from_ini_str(&ini, "loopback.ini", Vec::new())
                .expect("valid config");
            let server = genro_asgi::AsgiServer::from_config(config);
            let server = if logged {
                server
            } else {
                server.without_logging()
            };
            server.serve(app()).await.expect("serve");
        }
        other => panic!(
            "unknown mode {other:?}: hyper, axum, axum-mt, axum-timer, genro, asgi, asgi-seed, \
             asgi-logged, floor, floor-server"
        ),
    }
}

/// The AsgiServer's configuration in the comparison: a production one (the watchdog running,
/// the health endpoints, the metrics endpoint, the header read timeout and body limit, which
/// are always on). `LOOPBACK_INI`, when set, replaces everything after `[server]`: the per-step table turns
/// parts off with it (for example `[watchdog]\nenabled = false\n[health]\nenabled = true\n`).
fn asgi_ini(port: u16) -> String {
    let parts = std::env::var("LOOPBACK_INI").unwrap_or_else(|_| {
        "[watchdog]\nenabled = true\ninterval = 1s\n[health]\nenabled = true\n".to_owned()
    });
    format!("[server]\nport = {port}\n{}", parts.replace("\\n", "\n"))
}

/// The seed's `server.ini` (`crates/genro-server/tests/fixtures/seed.ini`, the original design's
/// example), with the environment overrides a bench machine needs: the ports (`port + 1` for
/// the metrics export port), a log file in the temporary directory at WARNING, the webhook
/// pointed at a local address (it is only called for a critical error), `runtime` and `workers`.
fn seed_config(port: u16, runtime: &str, workers: &str) -> genro_asgi::Config {
    let log = std::env::temp_dir().join(format!("genro-loopback-seed-{port}.log"));
    let env = [
        ("SERVER_HOST", "127.0.0.1".to_owned()),
        ("SERVER_PORT", port.to_string()),
        ("SERVER_WORKERS", workers.to_owned()),
        ("SERVER_RUNTIME", runtime.to_owned()),
        ("LOGGING_LEVEL", "WARNING".to_owned()),
        ("LOGGING_FILE", log.display().to_string()),
        ("METRICS_EXPORT_PORT", (port + 1).to_string()),
        (
            "ERRORS_NOTIFY_WEBHOOK",
            format!("http://127.0.0.1:{}/hook", port + 2),
        ),
    ]
    .map(|(key, value)| (format!("GENRO_ASGI_{key}"), value))
    .into_iter()
    .chain(seed_overrides());
    genro_asgi::Config::from_ini_str(
        include_str!("../crates/genro-server/tests/fixtures/seed.ini"),
        "seed.ini",
        env,
    )
    .expect("the seed's configuration")
}

/// `LOOPBACK_SEED`: more overrides of the seed's keys, `SECTION_KEY=value` separated by
/// spaces (`WATCHDOG_ENABLED=false METRICS_EXPORT_PORT=0`): the breakdown turns parts of the
/// seed's configuration off with it, one at a time.
fn seed_overrides() -> Vec<(String, String)> {
    std::env::var("LOOPBACK_SEED")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (format!("GENRO_ASGI_{key}"), value.to_owned()))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [mode, port] = args.as_slice() else {
        // `cargo test --benches` runs this with no arguments: nothing to serve.
        println!("usage: loopback <mode> <port> (modes: see the file's documentation)");
        return;
    };
    let port: u16 = port.parse().expect("port");
    if let Some(rest) = mode.strip_prefix("asgi-seed") {
        // As users run it: `run()` on the seed's configuration, verbatim but for what a bench
        // machine needs, set the way an operator sets it (GENRO_ASGI_* overrides).
        let (runtime, rest) = match rest.strip_prefix("-ws") {
            Some(rest) => ("work_stealing", rest),
            None => ("per_core", rest),
        };
        let workers = rest.strip_prefix("-w").unwrap_or("1");
        genro_asgi::AsgiServer::from_config(seed_config(port, runtime, workers))
            .run(app())
            .expect("serve");
        return;
    }
    if mode == "axum-mt" {
        // axum::serve on a multi-thread runtime of one worker, as `run()` builds its runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            tokio::select! {
                () = serve("axum", port) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::select! {
            () = serve(mode, port) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
}
