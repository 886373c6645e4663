//! The smallest genro server binary: the shared command line, and four routes.
//!
//! ```text
//! cargo run -p genro-server --example minimal_server -- --config minimal.ini
//! cargo run -p genro-server --example minimal_server -- --check-config --config minimal.ini
//! cargo run -p genro-server --example minimal_server -- --print-config
//!
//! curl localhost:8000/                 # hello
//! curl localhost:8000/slow?ms=500      # answers after 500 ms (the drain waits for it)
//! curl localhost:8000/greeting         # [application] greeting, as the last reload left it
//! curl localhost:8000/panic            # 500 with an error id; the panic is one line in the log
//! ```
//!
//! With no `--config`, it reads `minimal.ini` in the current directory. Once listening, it
//! prints `listening on http://ADDRESS` on stdout.

use std::{convert::Infallible, process::ExitCode, time::Duration};

use axum::{extract::Query, routing::get, Router};
use genro_server::{
    cli::{self, Command},
    AsgiServer, ServerContext,
};

#[derive(serde::Deserialize)]
struct Slow {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<Slow>) -> String {
    let ms = q.ms.unwrap_or(500).min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

async fn greeting(server: ServerContext) -> String {
    let config = server.config();
    format!("{}\n", config.application.get("greeting").unwrap_or("-"))
}

fn main() -> ExitCode {
    let config = match cli::command("minimal.ini", std::env::args().skip(1)) {
        Command::Serve(config) => config,
        exit => return exit.report(),
    };
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/slow", get(slow))
        .route("/greeting", get(greeting))
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("the /panic route panics");
                }
                "unreachable"
            }),
        );
    let server = AsgiServer::from_config(*config).on_startup(|server| async move {
        if let Some(addr) = server.bound().main {
            println!("listening on http://{addr}");
        }
        Ok::<_, Infallible>(())
    });
    match server.run(app) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
