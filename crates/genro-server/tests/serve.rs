//! The server over real sockets: the request path, endpoints, limits, hostile clients, and the
//! lifecycle. Each test starts its own server on a free port.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    routing::{get, post},
    Router,
};
use genro_server::{AsgiServer, Config, ServerContext};
use genro_test_support::{
    eventually,
    http::{client, get as get_text},
    series_value,
    server::{start_server, RunningServer},
    wait_for,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The base of a configuration built by hand: a free port.
const BASE: &str = "[server]\nport = 0\n";

async fn start(ini: &str, app: Router) -> RunningServer {
    start_server(ini, |s| s, app).await
}

fn hello() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/users/{id}", get(|| async { "user" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_ids_metrics_and_health_and_promtool_accepts_the_scrape() {
    let server = start("", hello()).await;
    let (status, headers, body) = get_text(&server.url("/users/7")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user"));
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(uuid_version(id), Some('7'), "{id}");

    let (status, _, text) = get_text(&server.url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("registry_in_flight"), "{text}");
    assert!(text.contains("server_phase 1"), "{text}");
    let open = genro_test_support::series_value(&text, "server_connections_open").unwrap();
    assert!(open >= 1.0, "{text}");
    let (ok, said) = genro_test_support::promtool(&text);
    assert!(ok, "{said}");

    assert_eq!(
        get_text(&server.url("/health/live")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get_text(&server.url("/health/ready")).await.0,
        StatusCode::OK
    );
    server.stop().await;
}

fn uuid_version(id: &str) -> Option<char> {
    id.chars().nth(14)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_port_and_not_on_the_main_one() {
    let server = start("[metrics]\nexport_port = 0\nendpoint = /stats\n", hello()).await;
    let export = server.handle.bound().await.unwrap().export.unwrap();
    get_text(&server.url("/")).await;
    let (status, _, text) = get_text(&format!("http://{export}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(r#"route="/""#), "{text}");
    let (ok, said) = genro_test_support::promtool(&text);
    assert!(ok, "{said}");
    assert_eq!(
        get_text(&format!("http://{export}/")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_text(&server.url("/stats")).await.0,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_on_the_same_port() {
    let server = start("", hello()).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let res = h2.get(server.url("/").parse().unwrap()).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert!(res.headers().contains_key("x-request-id"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_reach_the_server_and_the_application_section() {
    async fn about(server: ServerContext) -> String {
        let config = server.config();
        let app = &config.application;
        format!(
            "{}|{}|{}|{}",
            app.app_name().unwrap(),
            app.get("color").unwrap(),
            app.secret_key().unwrap(),
            server.registry().len()
        )
    }
    let server = start(
        "[application]\nname = shop\ncolor = blue\nsecret_key = s3cr3t-value\n",
        Router::new().route("/about", get(about)),
    )
    .await;
    let (_, _, body) = get_text(&server.url("/about")).await;
    assert_eq!(body, "shop|blue|********|1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_reach_the_app() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use futures_util::{SinkExt, StreamExt};
    let app = Router::new().route(
        "/ws",
        get(|upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(|mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    if let Message::Text(t) = msg {
                        let _ = socket.send(Message::Text(format!("echo {t}").into())).await;
                    }
                }
            })
        }),
    );
    let server = start("", app).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo hi");
    drop(ws);
    server.stop().await;
}

/// Sends `head` over a raw connection (in two writes when `split`, 100 ms apart) and returns
/// the status line, or `None` when the server closed the connection instead.
async fn raw(addr: SocketAddr, head: &[u8], split: bool) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 1024];
    let mut early = None;
    if split {
        let (a, b) = head.split_at(head.len() / 2);
        stream.write_all(a).await.ok()?;
        // The second half 100 ms later, unless the server answers or closes first.
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Err(_) => stream.write_all(b).await.ok()?,
            Ok(read) => early = Some(read.ok()?),
        }
    } else {
        stream.write_all(head).await.ok()?;
    }
    let n = match early {
        Some(n) => n,
        None => tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer or a close")
            .ok()?,
    };
    (n > 0).then(|| {
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_are_refused_and_the_server_stays_healthy() {
    let server = start("", hello()).await;
    let mut many = String::from("GET / HTTP/1.1\r\nhost: x\r\n");
    for i in 0..101 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(server.addr, many.as_bytes(), false).await;
    assert!(
        answer.as_deref().is_none_or(|l| l.contains("431")),
        "{answer:?}"
    );

    let large = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let answer = raw(server.addr, large.as_bytes(), true).await;
    assert!(
        answer.as_deref().is_none_or(|l| l.contains("431")),
        "{answer:?}"
    );

    assert_eq!(get_text(&server.url("/")).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_limit_body_is_refused_before_the_handler_or_cut_off() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/upload",
        post({
            let calls = calls.clone();
            move |body: Bytes| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                format!("{}", body.len())
            }
        }),
    );
    let server = start("[limits]\nbody_limit = 64KiB\n", app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Declared too large: refused before the handler runs.
    let req = Request::post(server.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 65 * 1024])))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");

    // Chunked, no length: cut off at the limit.
    let chunks = futures_util::stream::iter((0..64).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'y'; 8 * 1024])))
    }));
    let chunked =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::StreamBody<_>>();
    let req = Request::post(server.url("/upload"))
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    // The server answers 413 as soon as the limit is passed; the client, still sending, may see
    // that answer or the connection closing under it. Either way the handler never got the body.
    match chunked.request(req).await {
        Ok(res) => assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => {
            // hyper-util says `client error (SendRequest)`; what happened is in its sources.
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                chain.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            assert!(
                e.is_connect()
                    || ["connection", "closed", "broken pipe", "reset"]
                        .iter()
                        .any(|w| chain.contains(w)),
                "{chain}"
            );
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
    // Within the limit: fine.
    let req = Request::post(server.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'z'; 1000])))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_header_read_timeout() {
    let server = start("[limits]\nheader_read_timeout = 2s\n", hello()).await;
    let started = Instant::now();
    let slow: Vec<_> = (0..200)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let head = b"GET / HTTP/1.1\r\nhost: x\r\n";
                let mut buf = [0u8; 256];
                for byte in head {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return Instant::now();
                    }
                    // One byte every 2 s, watching for the close meanwhile.
                    // Closed, reset, or answered (a 408) before closing.
                    let waited =
                        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
                    if waited.is_ok() {
                        return Instant::now();
                    }
                }
                panic!("the slow client was never closed");
            })
        })
        .collect();
    // A normal client keeps being served meanwhile.
    // A client sending a request every 100 ms, until every slow client is closed.
    let mut served = 0;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while !slow.iter().all(tokio::task::JoinHandle::is_finished) {
        every.tick().await;
        assert_eq!(get_text(&server.url("/")).await.0, StatusCode::OK);
        served += 1;
    }
    for task in slow {
        let closed_at = task.await.unwrap();
        let after = closed_at.duration_since(started);
        assert!(
            after <= Duration::from_secs(3) + Duration::from_millis(500),
            "closed after {after:?}"
        );
    }
    assert!(served >= 10);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_trickling_its_next_head_is_closed_by_the_header_read_timeout() {
    // The idle limit is long: only the header read timeout can close these connections in time.
    let server = start(
        "[limits]\nheader_read_timeout = 1s\nidle_timeout = 30s\n",
        hello(),
    )
    .await;
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(
                    buf[..n].starts_with(b"HTTP/1.1 200"),
                    "the first request is answered"
                );
                // The second head, one byte every 200 ms: never complete within 1 s.
                let started = Instant::now();
                for byte in b"GET / HTTP/1.1\r\nhost: x\r\n".iter().cycle() {
                    if stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf))
                        .await
                    {
                        Err(_) => {}
                        Ok(Ok(0) | Err(_)) => break,
                        Ok(Ok(n)) => panic!("answered a head never completed: {:?}", &buf[..n]),
                    }
                    assert!(started.elapsed() < Duration::from_secs(10), "never closed");
                }
                started.elapsed()
            })
        })
        .collect();
    for task in slow {
        let after = task.await.unwrap();
        // One timeout, and up to half of one more (the end of the first request is seen by
        // the connection's next look), with room for a loaded machine.
        assert!(
            after >= Duration::from_millis(900) && after <= Duration::from_millis(2500),
            "closed after {after:?}"
        );
    }
    assert_eq!(get_text(&server.url("/")).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_records_the_client_address_on_http1_and_http2() {
    let app = Router::new().route(
        "/who",
        get(|envelope: genro_envelope::Envelope| async move {
            envelope.client().map(|c| c.to_string()).unwrap_or_default()
        }),
    );
    let server = start("", app).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let me = stream.local_addr().unwrap().to_string();
    stream
        .write_all(b"GET /who HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.ends_with(&me), "{text}");
    // HTTP/2: each stream is served on a task of its own.
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let me = stream.local_addr().unwrap().to_string();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let res = sender
        .send_request(
            Request::get(server.url("/who"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, me.as_bytes());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_within_the_timeout() {
    let server = start("[limits]\nheader_read_timeout = 1s\n", hello()).await;
    let started = Instant::now();
    let silent: Vec<_> = (0..50)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let mut buf = [0u8; 16];
                let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                    .await
                    .expect("closed by the server")
                    .unwrap_or(0);
                assert_eq!(n, 0, "a silent connection gets no bytes, only a close");
                Instant::now()
            })
        })
        .collect();
    eventually("50 silent connections accepted", || {
        open_connections(&server) == Some(50.0)
    })
    .await;
    assert_eq!(get_text(&server.url("/")).await.0, StatusCode::OK);
    for task in silent {
        let after = task.await.unwrap().duration_since(started);
        assert!(after < Duration::from_secs(2), "closed after {after:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_gives_504_and_concurrency_limit_gives_503_with_ids() {
    let handling = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/slow",
        get({
            let handling = handling.clone();
            move || async move {
                handling.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "late"
            }
        }),
    );
    let server = start("[limits]\nrequest_timeout = 300ms\n", app.clone()).await;
    let (status, headers, body) = get_text(&server.url("/slow")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(headers.contains_key("x-error-id"));
    server.stop().await;

    let server = start("[limits]\nconcurrency_limit = 1\n", app).await;
    handling.store(0, Ordering::SeqCst);
    let first = tokio::spawn(get_text(server.url("/slow").leak()));
    // The first request's handler runs: it holds the one slot.
    eventually("the first request handled", || {
        handling.load(Ordering::SeqCst) == 1
    })
    .await;
    let (status, headers, _) = get_text(&server.url("/slow")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert!(headers.contains_key("x-error-id"));
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_hooks_run_before_serving_and_a_failing_one_stops_the_start() {
    let served = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/",
        get({
            let served = served.clone();
            move || async move {
                served.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let seen_before = Arc::new(AtomicUsize::new(usize::MAX));
    let shutdown_ran = Arc::new(AtomicUsize::new(0));
    let server = start_server(
        "",
        |s| {
            let seen_before = seen_before.clone();
            let served = served.clone();
            let shutdown_ran = shutdown_ran.clone();
            s.on_startup(move |ctx: ServerContext| async move {
                assert!(!ctx.is_ready(), "not ready while starting");
                tokio::time::sleep(Duration::from_millis(300)).await;
                seen_before.store(served.load(Ordering::SeqCst), Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .on_shutdown(move |_ctx| async move {
                shutdown_ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
        },
        app,
    )
    .await;
    // Sent while the hook still runs: answered only after it.
    let (status, _, _) = get_text(&server.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seen_before.load(Ordering::SeqCst),
        0,
        "nothing was served before the hook ended"
    );
    server.stop().await;
    assert_eq!(shutdown_ran.load(Ordering::SeqCst), 1);

    let config = Config::from_ini_str(BASE, "t.ini", Vec::new()).unwrap();
    let err = AsgiServer::from_config(config)
        .without_logging()
        .on_startup(|_ctx| async { Err::<(), _>(std::io::Error::other("database unreachable")) })
        .serve(hello())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "on_startup hook 1 failed: database unreachable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_lets_requests_finish_and_readiness_turns_false_at_once() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "finished"
        }),
    );
    let server = start("", app).await;
    let url = server.url("/slow");
    let ready_url = server.url("/health/ready");
    // A keep-alive connection opened before the drain can still ask for readiness.
    let keepalive = client();
    assert_eq!(
        keepalive
            .get(ready_url.parse().unwrap())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get_text(&url).await })
        })
        .collect();
    let registry = server.context.registry().clone();
    eventually("10 requests in flight", || registry.len() == 10).await;
    let handle = server.handle.clone();
    handle.shutdown();
    eventually("not ready", || !handle.is_ready()).await;
    // New connections are refused once the listener is closed.
    wait_for("new connections refused", async || {
        TcpStream::connect(server.addr).await.is_err().then_some(())
    })
    .await;
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "finished"));
    }
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("stopped within the drain")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_drain_is_aborted_at_the_deadline() {
    let app = Router::new().route(
        "/forever",
        get(|| async {
            std::future::pending::<()>().await;
            "never"
        }),
    );
    let server = start("[shutdown]\ndrain_timeout = 500ms\n", app).await;
    let url = server.url("/forever");
    let request = tokio::spawn(async move { client().get(url.parse().unwrap()).await });
    let registry = server.context.registry().clone();
    eventually("the request in flight", || registry.len() == 1).await;
    let began = Instant::now();
    server.handle.shutdown();
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .expect("the drain is bounded")
        .unwrap()
        .unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2_000),
        "{took:?}"
    );
    // Its handler was cancelled: answered 503 with an error id, then the connection closed.
    let response = request
        .await
        .unwrap()
        .expect("the aborted request is answered");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("x-error-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_back_the_next_connection() {
    let server = start("[limits]\nmax_connections = 2\n", hello()).await;
    let a = TcpStream::connect(server.addr).await.unwrap();
    let b = TcpStream::connect(server.addr).await.unwrap();
    eventually("both connections accepted", || {
        open_connections(&server) == Some(2.0)
    })
    .await;
    // The third is accepted by the kernel but not served until a slot frees.
    let mut third = tokio::spawn({
        let url = server.url("/");
        async move { get_text(&url).await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut third)
            .await
            .is_err(),
        "served past max_connections"
    );
    drop(a);
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(3), third)
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    drop(b);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_errors_and_stuck_requests_reach_the_same_webhook() {
    let received = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let hook = Router::new().route(
        "/hook",
        post({
            let received = received.clone();
            move |body: Bytes| async move {
                received
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        }),
    );
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(hook_listener, hook).await });
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        );
    let ini = format!(
        "[errors]\nnotify_critical = true\nnotify_webhook = http://{hook_addr}/hook\n\
         [watchdog]\nenabled = true\ninterval = 100ms\ntimeout = 200ms\ncritical = 500ms\n"
    );
    let server = start(&ini, app).await;
    let (status, headers, _) = get_text(&server.url("/panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let error_id = headers["x-error-id"].to_str().unwrap().to_owned();
    assert_eq!(get_text(&server.url("/stuck")).await.0, StatusCode::OK);
    eventually("two notifications", || received.lock().unwrap().len() >= 2).await;
    let received = received.lock().unwrap().clone();
    let kinds: Vec<_> = received
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"critical_error".to_owned()), "{received:?}");
    assert!(kinds.contains(&"stuck_request".to_owned()), "{received:?}");
    let error = received
        .iter()
        .find(|n| n["kind"] == "critical_error")
        .unwrap();
    assert_eq!(error["details"]["error_id"], error_id.as_str());
    let stuck = received
        .iter()
        .find(|n| n["kind"] == "stuck_request")
        .unwrap();
    assert_eq!(stuck["request"]["route"], "/stuck");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_from_allowed_and_foreign_origins() {
    let server = start(
        "[cors]\nenabled = true\nallow_origins = https://app.example.com\nallow_methods = GET, POST\n",
        hello(),
    )
    .await;
    let preflight = |origin: &'static str| {
        let url = server.url("/");
        async move {
            let req = Request::builder()
                .method("OPTIONS")
                .uri(url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(Empty::<Bytes>::new())
                .unwrap();
            client().request(req).await.unwrap()
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let foreign = preflight("https://evil.example").await;
    assert!(!foreign
        .headers()
        .contains_key("access-control-allow-origin"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_applies_to_large_responses_only() {
    let app = Router::new()
        .route("/big", get(|| async { "x".repeat(10_000) }))
        .route("/small", get(|| async { "tiny" }))
        .route(
            "/stream",
            get(|| async {
                // 5 chunks of 2 KiB-looking text, 200 ms apart.
                axum::body::Body::from_stream(futures_util::stream::unfold(0, |n| async move {
                    if n == 5 {
                        return None;
                    }
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Some((
                        Ok::<_, std::convert::Infallible>(format!("chunk {n} ")),
                        n + 1,
                    ))
                }))
            }),
        );
    let server = start("[compression]\nenabled = true\nmin_size = 1KiB\n", app).await;
    let fetch = |path: &str| {
        let req = Request::get(server.url(path))
            .header("accept-encoding", "gzip")
            .body(Empty::<Bytes>::new())
            .unwrap();
        client().request(req)
    };
    let big = fetch("/big").await.unwrap();
    assert_eq!(big.headers()["content-encoding"], "gzip");
    let body = big.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() < 1000, "{} bytes", body.len());
    let small = fetch("/small").await.unwrap();
    assert!(!small.headers().contains_key("content-encoding"));
    // A streamed body is sent as it is produced, chunk by chunk, not held back by an encoder.
    let started = Instant::now();
    let stream = fetch("/stream").await.unwrap();
    assert!(!stream.headers().contains_key("content-encoding"));
    let mut body = stream.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "chunk 0 ");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the first chunk was held back"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest.len(), 4 * "chunk 0 ".len());
    server.stop().await;
}

#[test]
fn run_inside_a_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        let config = Config::from_ini_str(BASE, "t.ini", Vec::new()).unwrap();
        AsgiServer::from_config(config)
            .without_logging()
            .run(hello())
            .unwrap_err()
    });
    assert!(
        err.to_string().contains("call `serve(app).await` instead"),
        "{err}"
    );
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads until the server closes the connection (or resets it); when, after `since`.
async fn closed_after(mut stream: TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .expect("closed by the server");
    since.elapsed()
}

/// An HTTP/2 connection of hyper's client: its sender, and the task that drives it (it answers
/// pings) and ends when the server closes the connection.
async fn h2_connection(
    addr: SocketAddr,
    window: Option<u32>,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    if let Some(window) = window {
        builder.initial_stream_window_size(window);
    }
    let (send, conn) = builder
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// `GET url` over an HTTP/2 connection of [`h2_connection`]; the response, body unread.
async fn h2_get(
    send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    url: String,
) -> http::Response<hyper::body::Incoming> {
    let res = send
        .send_request(Request::get(url).body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res
}

/// Idle HTTP/2 connections hold no slot for long: one that sent only its preface, one stalled
/// inside a header block, and one that made a request and now only answers pings, each closed
/// within its timeout; 64 of them with `max_connections = 64` do not keep `/health/live` from
/// answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_and_never_lock_out_health() {
    let server = start(
        "[limits]\nmax_connections = 64\nheader_read_timeout = 1s\nidle_timeout = 1500ms\n\
         keepalive_timeout = 200ms\n",
        hello(),
    )
    .await;
    let started = Instant::now();
    let mut raw = Vec::new();
    for i in 0..42 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(H2_PREFACE).await.unwrap();
        if i % 2 == 1 {
            // HEADERS on stream 1 without END_HEADERS (a CONTINUATION should follow): `:method GET`.
            stream
                .write_all(b"\x00\x00\x01\x01\x00\x00\x00\x00\x01\x82")
                .await
                .unwrap();
        }
        raw.push(tokio::spawn(closed_after(
            stream,
            started,
            Duration::from_secs(5),
        )));
    }
    let mut pinging = Vec::new();
    for _ in 0..22 {
        let (mut send, driven) = h2_connection(server.addr, None).await;
        h2_get(&mut send, server.url("/")).await;
        pinging.push((send, driven));
    }
    // Every slot is held now; health answers once the idle ones go, within a few seconds.
    let (status, _, _) = tokio::time::timeout(
        Duration::from_secs(4),
        get_text(&server.url("/health/live")),
    )
    .await
    .expect("health answered while idle connections filled every slot");
    assert_eq!(status, StatusCode::OK);
    for closed in raw {
        let after = closed.await.unwrap();
        assert!(after < Duration::from_secs(3), "closed after {after:?}");
    }
    for (_send, driven) in pinging {
        tokio::time::timeout(Duration::from_secs(4), driven)
            .await
            .expect("a connection that only answers pings is closed when idle")
            .unwrap();
    }
    server.stop().await;
}

/// `keepalive_timeout = 0` means no pings, as documented, not "close at once".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_zero_turns_pings_off() {
    let server = start("[limits]\nkeepalive_timeout = 0\n", hello()).await;
    let (mut send, driven) = h2_connection(server.addr, None).await;
    let mut driven = driven;
    for _ in 0..2 {
        h2_get(&mut send, server.url("/")).await;
        // Open for 700 ms after each request: no ping closed it.
        assert!(
            tokio::time::timeout(Duration::from_millis(700), &mut driven)
                .await
                .is_err(),
            "the connection is still open"
        );
    }
    server.stop().await;
}

/// The gauge `name` in a scrape.
fn gauge(scrape: &str, name: &str) -> f64 {
    series_value(scrape, name).unwrap_or_else(|| panic!("{name} missing:\n{scrape}"))
}

/// The connections the server counts as open, read in process: `None` until it counts them
/// (from its first accept loop on).
fn open_connections(server: &RunningServer) -> Option<f64> {
    series_value(&server.metrics(), "server_connections_open")
}

/// The export port has a budget of its own: with the main port's connections all held, a
/// scrape is answered at once; and the open-connection gauge counts connections only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_answers_while_the_main_port_is_full_and_only_connections_are_counted() {
    let server = start(
        "[metrics]\nexport_port = 0\n[limits]\nmax_connections = 3\n",
        hello(),
    )
    .await;
    let export = server.handle.bound().await.unwrap().export.unwrap();
    let scrape = get_text(&format!("http://{export}/metrics")).await.2;
    // Only the scrape's own connection is open.
    assert_eq!(gauge(&scrape, "server_connections_open"), 1.0, "{scrape}");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    eventually("three connections on the main port", || {
        open_connections(&server) == Some(3.0)
    })
    .await;
    let started = Instant::now();
    let (status, _, scrape) = tokio::time::timeout(
        Duration::from_secs(1),
        get_text(&format!("http://{export}/metrics")),
    )
    .await
    .expect("the scrape waited for the main port");
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(gauge(&scrape, "server_connections_open"), 4.0, "{scrape}");
    drop(held);
    server.stop().await;
}

/// The `/big` route: 16 MiB, more than any socket buffer holds.
fn big() -> Router {
    hello()
        .route("/big", get(|| async { Bytes::from(vec![b'x'; 16 << 20]) }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
}

/// A client that stops reading its response is disconnected after `write_timeout` without
/// progress, over HTTP/1 (the socket fills) and HTTP/2 (the flow-control window stays shut).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_after_the_write_timeout() {
    let server = start("[limits]\nwrite_timeout = 500ms\n", big()).await;
    let mut http1 = TcpStream::connect(server.addr).await.unwrap();
    http1
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (mut send, driven) = h2_connection(server.addr, Some(65_535)).await;
    let res = h2_get(&mut send, server.url("/big")).await;
    // Neither body is read from here on.
    eventually("both clients connected", || {
        open_connections(&server) == Some(2.0)
    })
    .await;
    tokio::time::timeout(Duration::from_secs(4), driven)
        .await
        .expect("the HTTP/2 client that does not read was disconnected")
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(4),
        eventually("the HTTP/1 client disconnected", || {
            open_connections(&server) == Some(0.0)
        }),
    )
    .await
    .expect("the HTTP/1 client that does not read was disconnected");
    drop((res, http1));
    server.stop().await;
}

/// A request body that stops arriving fails the read after `body_read_timeout`: the handler
/// answers, instead of waiting as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_arriving_fails_after_the_body_read_timeout() {
    let server = start("[limits]\nbody_read_timeout = 500ms\n", big()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(4), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("answered once the body stalled");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A body that keeps coming, however slowly within the limit, is read whole.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\n")
        .await
        .unwrap();
    for chunk in [b"ab", b"cd", b"ef"] {
        // 300 ms between pieces, within the limit: no answer meanwhile.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf))
                .await
                .is_err(),
            "answered before the body ended"
        );
        stream.write_all(chunk).await.unwrap();
    }
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n6"), "{answer}");
    server.stop().await;
}
