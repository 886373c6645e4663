//! The examples as a user runs them: a real process, and the requests each doc comment shows,
//! made by real clients (hyper's for HTTP, tonic's for gRPC). `cargo test` builds the examples
//! before running the tests. (`examples/server.rs` has its own file, `tests/example_server.rs`.)
#![allow(clippy::too_many_lines)] // a test reads as one scenario

mod common;

use std::{path::Path, process::Command, time::Duration};

use bytes::Bytes;
use common::example::{example_named, Server};
use genro_test_support::http::{get, spawn_get};
use genro_test_support::process::temp_dir;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// The example `name` on a free port, with these environment variables; its log is its stderr.
fn start(name: &str, dir: &str, env: &[(&str, &str)]) -> Server {
    let dir = temp_dir(dir);
    let mut command = Command::new(example_named(name));
    command.env("PORT", "0").envs(env.iter().copied());
    Server::spawn(command, dir.join("example.log"))
}

/// The lines of `cargo tree` for the root package with these arguments.
fn cargo_tree(args: &[&str]) -> String {
    let base = [
        "tree",
        "--offline",
        "--locked",
        "-p",
        "genro-asgi",
        "--prefix",
        "none",
    ];
    common::cargo(&[&base[..], args].concat())
}

#[test]
fn hyper_only_pulls_no_axum_and_no_tonic() {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hyper_only.rs"),
    )
    .unwrap();
    // The feature set its doc comment builds it with.
    assert!(source.contains("--no-default-features --features genro-watchdog"));
    let tree = cargo_tree(&[
        "-e",
        "normal",
        "--no-default-features",
        "--features",
        "genro-watchdog",
    ]);
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !name.starts_with("axum") && !name.starts_with("tonic"),
            "{name} is in the tree of the example's features:\n{tree}"
        );
    }
    for wanted in ["genro-envelope", "genro-registry", "genro-watchdog"] {
        assert!(tree.contains(wanted), "{wanted} missing:\n{tree}");
    }
    // With the defaults, axum is there: the check above can see it.
    assert!(cargo_tree(&["-e", "normal"])
        .lines()
        .any(|l| l.starts_with("axum ")));

    // Besides genro-asgi, the example uses crates that are hyper's own family or tokio's, and
    // none of them depends on axum or tonic.
    let used: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("use "))
        .filter_map(|l| l.split([':', ';']).next())
        .collect();
    for krate in &used {
        assert!(
            [
                "std",
                "genro_asgi",
                "bytes",
                "http_body_util",
                "hyper",
                "hyper_util",
                "tower"
            ]
            .contains(krate),
            "the example uses {krate}"
        );
    }
    for krate in [
        "bytes",
        "http-body-util",
        "hyper",
        "hyper-util",
        "tower",
        "tokio",
        "tracing-subscriber",
    ] {
        let tree = common::cargo(&[
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            krate,
        ]);
        assert!(!tree.is_empty(), "{krate}");
        assert!(
            !tree
                .lines()
                .any(|l| l.starts_with("axum") || l.starts_with("tonic")),
            "{krate} pulls axum or tonic:\n{tree}"
        );
    }
}

/// `GET /` answers "hello, request <short id>" under a fresh UUIDv7; a valid id of the
/// client's is echoed.
async fn hello_gets_an_id_and_a_valid_one_is_echoed(server: &Server) {
    let (status, headers, body) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(uuid::Uuid::try_parse(id).unwrap().get_version_num(), 7);
    assert_eq!(body, format!("hello, request {}\n", &id[id.len() - 8..]));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(server.url("/"))
        .header("x-request-id", "order-42")
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "order-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_only_does_what_its_doc_comment_says() {
    let mut server = start("hyper_only", "example-hyper-only", &[]);

    // curl -i localhost:3000/, then with -H 'x-request-id: order-42'
    hello_gets_an_id_and_a_valid_one_is_echoed(&server).await;

    // curl 'localhost:3000/slow?ms=…' & and curl localhost:3000/inflight
    let slow = spawn_get(server.url("/slow?ms=3500"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, listed) = get(&server.url("/inflight")).await;
    assert!(listed.starts_with("2 in flight\n"), "{listed}");
    let line = listed
        .lines()
        .find(|l| l.contains("GET /slow"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("handling"), "{line}");
    assert!(line.contains("127.0.0.1:"), "the client address: {line}");
    assert!(line.contains(r#"("stage", "sleeping")"#), "{line}");
    let short = line.split_whitespace().next().unwrap().to_owned();
    // The watchdog: slow after 1 s, critically stuck after 3 s, each once, with the id.
    let log = server.wait_for_stderr("request is critically stuck");
    for said in ["request is slow", "request is critically stuck"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(said)).collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].contains(&format!("error_id={short}")), "{log}");
    }
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "done\n"));

    // Ctrl-C or SIGTERM: a request in flight is answered, then the process exits.
    let slow = spawn_get(server.url("/slow?ms=700"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "done\n"));
    let (exit, _) = server.wait(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
    let log = server.stderr();
    assert!(log.contains("stopping: draining in_flight=1"), "{log}");
    assert!(log.contains("drained"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_layers_does_what_its_doc_comment_says() {
    use tonic::{codec::Streaming, Code};
    use tonic_health::{
        pb::{health_client::HealthClient, HealthCheckRequest, HealthCheckResponse},
        ServingStatus,
    };

    let mut server = start(
        "tonic_layers",
        "example-tonic",
        &[("DRAIN_DELAY_MS", "1500")],
    );
    let channel = tonic::transport::Channel::from_shared(server.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };

    // Check: SERVING, with the server's UUIDv7, or the client's own id echoed.
    let res = health.check(check("")).await.unwrap();
    assert_eq!(res.get_ref().status, ServingStatus::Serving as i32);
    let id = res
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(uuid::Uuid::try_parse(id).unwrap().get_version_num(), 7);
    let mut req = tonic::Request::new(check("genro.example.Jobs"));
    req.metadata_mut()
        .insert("x-request-id", "grpc-call-42".parse().unwrap());
    let res = health.check(req).await.unwrap();
    assert_eq!(res.metadata().get("x-request-id").unwrap(), "grpc-call-42");

    // Watch: listed on /inflight, streaming, until the client drops it.
    let mut watch: Streaming<HealthCheckResponse> =
        health.watch(check("")).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let (_, _, listed) = get(&server.url("/inflight")).await;
    let line = listed
        .lines()
        .find(|l| l.contains("/grpc.health.v1.Health/Watch"))
        .unwrap_or_else(|| panic!("the open stream is not listed:\n{listed}"));
    assert!(line.contains("streaming"), "{line}");
    drop(watch);
    let mut gone = false;
    for _ in 0..100 {
        let (_, _, listed) = get(&server.url("/inflight")).await;
        if !listed.contains("Health/Watch") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the dropped stream is still listed");

    // Run "crash": INTERNAL, with the error id in the message, the metadata and RequestInfo.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let run = |job: &str| tonic::Request::new(check(job));
    let path = http::uri::PathAndQuery::from_static("/genro.example.Jobs/Run");
    let ok: tonic::Response<HealthCheckResponse> = grpc
        .unary(
            run("report"),
            path.clone(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap();
    assert_eq!(ok.get_ref().status, ServingStatus::Serving as i32);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, HealthCheckResponse, _>(run("crash"), path, tonic_prost::ProstCodec::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    let error_id = status
        .metadata()
        .get("x-error-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        status.message().contains(&format!("error id {error_id}")),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("hit a bug"),
        "the panic stays in the log"
    );
    let info = tonic_types::StatusExt::get_details_request_info(&status).expect("RequestInfo");
    assert_eq!(info.request_id, error_id);
    let log = server.wait_for_stderr("hit a bug");
    assert!(
        log.lines()
            .any(|l| l.contains("hit a bug") && l.contains(&error_id)),
        "{log}"
    );

    // The metrics: the proven gRPC methods by name, the pages by route.
    let (_, _, metrics) = get(&server.url("/metrics")).await;
    for series in [
        r#"http_requests_total{method="POST",route="/grpc.health.v1.Health/Check",status="200"} 2"#,
        r#"route="/inflight""#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    // SIGTERM: NOT_SERVING at once (to Check and to an open Watch) while still serving, then
    // the watch ends and the process exits.
    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    server.signal("TERM");
    let next = tokio::time::timeout(Duration::from_secs(1), watch.message())
        .await
        .expect("the watch hears of the drain at once")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let res = health.check(check("")).await.unwrap();
    assert_eq!(res.get_ref().status, ServingStatus::NotServing as i32);
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the watch ends after the delay");
    assert!(matches!(ended, Ok(None) | Err(_)), "{ended:?}");
    let (exit, _) = server.wait(Duration::from_secs(10));
    assert!(exit.success(), "{exit:?}");
    let log = server.stderr();
    assert!(log.contains("not serving: draining in 1.5s"), "{log}");
    assert!(log.contains("drained"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_layers_does_what_its_doc_comment_says() {
    // Its log (on stdout) names the address it listens on.
    let mut server = start("axum_layers", "example-axum-layers", &[]);

    // curl -i localhost:3000/, then with -H 'x-request-id: order-42'
    hello_gets_an_id_and_a_valid_one_is_echoed(&server).await;

    // curl localhost:3000/slow & then curl localhost:3000/inflight
    let _slow = spawn_get(server.url("/slow"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, listed) = get(&server.url("/inflight")).await;
    let line = listed
        .lines()
        .find(|l| l.contains("GET /slow"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("handling") && line.contains(r#"("stage", "sleeping")"#),
        "{line}"
    );

    // curl -i localhost:3000/fail: problem+json with an error id, the message kept out of it
    let (status, headers, body) = get(&server.url("/fail")).await;
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "application/problem+json");
    let error_id = headers["x-error-id"].to_str().unwrap();
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["error_id"], error_id, "{body}");
    assert!(!body.contains("on fire"), "{body}");

    // curl localhost:3000/metrics
    let (status, _, metrics) = get(&server.url("/metrics")).await;
    assert_eq!(status, 200);
    for series in [
        r#"http_requests_total{method="GET",route="/",status="200"} 2"#,
        r#"http_requests_total{method="GET",route="/fail",status="500"} 1"#,
        "http_requests_in_flight",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    // Ctrl-C: it stops accepting and waits for /slow (10 s at most), then exits.
    server.signal("INT");
    let (exit, took) = server.wait(Duration::from_secs(15));
    assert!(exit.success(), "{exit:?}");
    assert!(
        took > Duration::from_secs(5),
        "it waited for /slow: {took:?}"
    );
}
