//! The peers of the loopback comparison, actix-web serving the same hello app with one worker:
//!
//! ```text
//! loopback-peers <mode> <port>
//!   actix        actix-web 4, no middleware
//!   actix-stack  actix-web 4 with the middleware its users add for what genro-asgi does: a
//!                request id and a span per request (tracing-actix-web's TracingLogger, a
//!                subscriber at WARN writing to a file, as the seed's `[logging]`), a request
//!                count and a latency histogram (actix-web-prom, `/metrics`)
//! ```
//!
//! Both accept HTTP/1.1 and HTTP/2 with prior knowledge (h2c, which actix-web detects by default), and stop on SIGINT.

use actix_web::{web, App, HttpServer};

async fn hello() -> &'static str {
    "Hello, World!"
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, port] = args.as_slice() else {
        eprintln!("usage: loopback-peers <actix|actix-stack> <port>");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("port");
    let addr = ("127.0.0.1", port);
    actix_web::rt::System::new().block_on(async move {
        match mode.as_str() {
            "actix" => {
                HttpServer::new(|| App::new().route("/", web::get().to(hello)))
                    .workers(1)
                    .bind(addr)?
                    .run()
                    .await
            }
            "actix-stack" => {
                let log = std::env::temp_dir().join(format!("loopback-peers-{port}.log"));
                let file = std::fs::File::create(log)?;
                tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::WARN)
                    .with_writer(std::sync::Mutex::new(file))
                    .init();
                let prometheus = actix_web_prom::PrometheusMetricsBuilder::new("http")
                    .endpoint("/metrics")
                    .build()
                    .expect("metrics");
                HttpServer::new(move || {
                    App::new()
                        .wrap(prometheus.clone())
                        .wrap(tracing_actix_web::TracingLogger::default())
                        .route("/", web::get().to(hello))
                })
                .workers(1)
                .bind(addr)?
                .run()
                .await
            }
            other => panic!("unknown mode {other:?}: actix, actix-stack"),
        }
    })
}
