//! `run()` and `[server] runtime`: where connections and their requests run, for each layout,
//! with a real listener, real HTTP/1 and HTTP/2 clients, and `run` on a thread of the test's.

use std::{collections::BTreeSet, thread};

use axum::{routing::get, Router};
use bytes::Bytes;
use genro_server::{AsgiServer, Config, ServerHandle};
use genro_test_support::http::get as get_text;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpStream, runtime::RuntimeFlavor};

/// Answers with the name of the thread the request runs on and its runtime's flavour.
fn where_am_i() -> Router {
    Router::new().route(
        "/where",
        get(|| async {
            let flavor = match tokio::runtime::Handle::current().runtime_flavor() {
                RuntimeFlavor::CurrentThread => "current_thread",
                _ => "multi_thread",
            };
            let thread = thread::current().name().unwrap_or("unnamed").to_owned();
            format!("{thread} {flavor}")
        }),
    )
}

/// Runs a server of `ini` with `run()` on a thread named `caller`; its handle and that thread.
fn run(
    ini: &str,
) -> (
    ServerHandle,
    thread::JoinHandle<Result<(), genro_server::Error>>,
) {
    let config = Config::from_ini_str(ini, "runtime.ini", Vec::new()).unwrap();
    let server = AsgiServer::from_config(config).without_logging();
    let handle = server.handle();
    let thread = thread::Builder::new()
        .name("caller".into())
        .spawn(move || server.run(where_am_i()))
        .unwrap();
    (handle, thread)
}

/// The answers of `connections` connections, each asking once.
fn answers(handle: &ServerHandle, connections: usize) -> BTreeSet<String> {
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async {
        let url = format!(
            "http://{}/where",
            handle.local_addr().await.expect("listening")
        );
        let mut seen = BTreeSet::new();
        // Each `get` is a new client, so a connection of its own.
        for _ in 0..connections {
            seen.insert(get_text(&url).await.2);
        }
        seen
    })
}

fn stop(handle: &ServerHandle, thread: thread::JoinHandle<Result<(), genro_server::Error>>) {
    handle.shutdown();
    thread.join().unwrap().expect("a clean stop");
}

#[test]
fn per_core_spreads_connections_over_single_threaded_workers() {
    let (handle, thread) = run("[server]\nport = 0\nworkers = 2\nruntime = per_core\n");
    let seen = answers(&handle, 6);
    // The thread that called `run` is the first worker; the second has a thread of its own.
    let expected: BTreeSet<String> = ["caller current_thread", "genro-worker-2 current_thread"]
        .map(str::to_owned)
        .into();
    assert_eq!(seen, expected);
    stop(&handle, thread);
}

#[test]
fn per_core_is_the_default_and_one_worker_serves_on_the_calling_thread() {
    let (handle, thread) = run("[server]\nport = 0\nworkers = 1\n");
    let expected: BTreeSet<String> = ["caller current_thread".to_owned()].into();
    assert_eq!(answers(&handle, 3), expected);
    stop(&handle, thread);
}

#[test]
fn work_stealing_serves_on_a_multi_threaded_runtime() {
    let (handle, thread) = run("[server]\nport = 0\nworkers = 2\nruntime = work_stealing\n");
    for answer in answers(&handle, 4) {
        assert_eq!(answer, "genro-worker multi_thread");
    }
    stop(&handle, thread);
}

/// Every stream of an HTTP/2 connection runs on the worker its connection went to (hyper runs
/// each stream as a task, spawned where the connection runs).
#[test]
fn per_core_keeps_an_http2_connections_streams_on_its_worker() {
    let (handle, thread) = run("[server]\nport = 0\nworkers = 2\n");
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async {
        let addr = handle.local_addr().await.expect("listening");
        for _connection in 0..2 {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let streams = (0..8).map(|_| {
                let mut send = send.clone();
                async move {
                    let req = Request::get("http://localhost/where")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let res = send.send_request(req).await.unwrap();
                    res.into_body().collect().await.unwrap().to_bytes()
                }
            });
            let answers: BTreeSet<Bytes> = futures_util::future::join_all(streams)
                .await
                .into_iter()
                .collect();
            assert_eq!(answers.len(), 1, "{answers:?}");
        }
    });
    // The client's connections close with its runtime, so the drain has none to wait for.
    drop(client);
    stop(&handle, thread);
}

#[test]
fn an_unknown_runtime_is_refused_with_the_choices() {
    let err = Config::from_ini_str("[server]\nruntime = green_threads\n", "t.ini", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.runtime"), "{err}");
    assert!(err.contains("per_core or work_stealing"), "{err}");
}
