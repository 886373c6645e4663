//! The server's spans in the client's OpenTelemetry trace, printed by OpenTelemetry's stdout
//! exporter (no collector needed).
//!
//! ```text
//! cargo run --example opentelemetry --features opentelemetry   # listens on 127.0.0.1:8000
//! curl -i -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' localhost:8000/
//! ```
//!
//! The span the exporter prints for that request has the client's trace id
//! (`4bf92f3577b34da6a3ce929d0e0e4736`) and the client's span (`00f067aa0ba902b7`) as its
//! parent; the log lines and any error body carry the same `trace_id`.
//!
//! The application installs its own subscriber (a tracing-opentelemetry layer and a fmt layer),
//! and the server, built with the `opentelemetry` feature, makes each request's span a child of
//! the client's.

use genro_asgi::{server::Config, AsgiServer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};

#[tokio::main]
async fn main() -> Result<(), genro_asgi::Error> {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("genro-example")))
        .with(tracing_subscriber::fmt::layer())
        .init();
    // Panics in the log too, once each (the server would install it with its own logging).
    genro_asgi::errors::install_panic_hook();

    let config = Config::from_ini_str(
        "[server]\nport = 8000\n[watchdog]\nenabled = false\n",
        "opentelemetry.ini",
        std::env::vars().collect::<Vec<_>>(),
    )
    .map_err(genro_asgi::Error::new)?;
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello\n" }));
    AsgiServer::from_config(config)
        .without_logging()
        .on_startup(|server| async move {
            if let Some(addr) = server.bound().main {
                println!("listening on http://{addr}");
            }
            Ok::<_, std::convert::Infallible>(())
        })
        .serve(app)
        .await?;
    provider.shutdown().map_err(genro_asgi::Error::new)?;
    Ok(())
}
