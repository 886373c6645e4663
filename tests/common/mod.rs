//! Shared helpers of the root integration tests: real TCP servers on loopback.
#![allow(dead_code, unreachable_pub)]

pub mod example;

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Serves `app` on an ephemeral loopback port with axum's hyper-based server, passing the peer
/// address as `ConnectInfo`. Returns the address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server");
    });
    addr
}

#[allow(unused_imports)]
pub use genro_test_support::LogBuffer;

/// Everything a [`webhook`] received, each body parsed as JSON.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A real webhook endpoint on loopback, `POST /hook`, that keeps every notification it receives,
/// with the `traceparent` header it came with (if any) as the key `received_traceparent`.
/// Returns its address and what it received.
pub async fn webhook() -> (SocketAddr, Received) {
    let received = Received::default();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = received.clone();
            move |headers: http::HeaderMap, body: bytes::Bytes| async move {
                let mut note: serde_json::Value = serde_json::from_slice(&body).unwrap();
                if let Some(traceparent) = headers.get("traceparent") {
                    note["received_traceparent"] = traceparent.to_str().unwrap().into();
                }
                received.lock().unwrap().push(note);
                "ok"
            }
        }),
    );
    (serve(hook).await, received)
}

/// Starts a real tonic server on loopback serving tonic-health (its generated code needs no
/// protoc) behind `$layer`, with service `genro.Test` reported as serving, and connects a real
/// tonic client. Evaluates to `(addr, client)`.
#[macro_export]
macro_rules! tonic_health_server {
    ($layer:expr) => {{
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("genro.Test", tonic_health::ServingStatus::Serving)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let layer = $layer;
        tokio::spawn(async move {
            // Keep the reporter alive so that watch streams stay open.
            let _reporter = reporter;
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (
            addr,
            tonic_health::pb::health_client::HealthClient::new(channel),
        )
    }};
}

/// Runs cargo with `args` in the workspace's root and returns its stdout; a failure of cargo
/// fails the test.
pub fn cargo(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
