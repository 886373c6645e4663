//! The console against a real server over real sockets: RELIABILITY 17–21, inspection,
//! cancellation, holding on error, and the audit log.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

mod common;

use genro_test_support::{metrics_text, wait_for};
use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use common::{fetch, fixture, handshake, raw, SECRET};
use genro_debug::{
    protocol::{ClientMessage, Refusal, ServerMessage},
    AllowList, Client, ClientError, DebugConfig, RemoteDebugServer, Secret,
};
use genro_registry::EnvelopeRegistry;
use genro_test_support::LogBuffer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const HOLD: Duration = Duration::from_secs(20);

fn logs() -> &'static LogBuffer {
    LogBuffer::global()
}

fn secret() -> Secret {
    Secret::new(SECRET)
}

async fn login(addr: &str) -> Client {
    Client::connect(addr, &secret()).await.expect("logged in")
}

/// Logs in from a chosen loopback address (Linux routes all of 127.0.0.0/8 to lo).
async fn login_from(local: &str, addr: &str, secret: &Secret) -> Result<Client, ClientError> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(local.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    Client::over(stream, addr, secret).await
}

fn refusal(result: Result<Client, ClientError>) -> Refusal {
    match result {
        Err(ClientError::Refused { reason, .. }) => reason,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("logged in"),
    }
}

/// Sends `command`, which must be `done`; then the waiting `client` gets `status` with the error
/// id `id`.
async fn command_answers(
    console: &mut Client,
    command: ClientMessage,
    done: &str,
    client: tokio::task::JoinHandle<common::Raw>,
    status: u16,
    id: &str,
) -> common::Raw {
    let reply = console.call(&command).await.unwrap();
    assert_eq!(
        reply,
        ServerMessage::Done {
            message: done.to_owned()
        }
    );
    let answer = client.await.unwrap();
    assert_eq!(answer.status, status);
    assert_eq!(answer.header("x-error-id").as_deref(), Some(id));
    answer
}

// RELIABILITY 17: a secret of at least 16 bytes, and 127.0.0.1 by default.
#[tokio::test]
async fn the_console_needs_a_16_byte_secret_and_binds_loopback_by_default() {
    logs();
    for short in ["", "xxxxx", "fifteen-bytes!!"] {
        let err = RemoteDebugServer::new(
            EnvelopeRegistry::new(),
            DebugConfig::new(Secret::new(short)),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "debug console: secret: must be at least 16 bytes (it has {})",
                short.len()
            )
        );
    }
    let mut config = DebugConfig::new(Secret::new("sixteen-bytes!!!"));
    assert_eq!(config.host, "127.0.0.1");
    config.port = 0;
    let running = RemoteDebugServer::new(EnvelopeRegistry::new(), config)
        .unwrap()
        .bind()
        .await
        .unwrap();
    assert!(running.local_addr().ip().is_loopback());
    running.stop().await;
}

// RELIABILITY 18: wrong secrets of every length are refused; the canary secret leaks nowhere.
#[tokio::test]
async fn wrong_secrets_of_any_length_are_refused_and_the_secret_leaks_nowhere() {
    logs();
    const CANARY: &str = "CANARY-5b1e-never-print-this-4c2d";
    let f = fixture(
        |c| {
            c.secret = Secret::new(CANARY);
            c.failures.failures = 100;
        },
        Duration::from_millis(50),
        4,
    )
    .await;
    let shorter = &CANARY[..CANARY.len() - 1];
    let equal = CANARY.replace("never", "NEVER");
    let longer = format!("{CANARY}!");
    for wrong in [shorter, equal.as_str(), longer.as_str(), ""] {
        let reason = refusal(Client::connect(&f.addr, &Secret::new(wrong)).await);
        assert_eq!(reason, Refusal::WrongSecret, "{wrong:?}");
    }
    let mut session = Client::connect(&f.addr, &Secret::new(CANARY))
        .await
        .unwrap();
    // A failing request, its error body, and everything the console shows of it.
    let answer = fetch(f.app, "/panic", "").await;
    let ls = session.call(&ClientMessage::Ls).await.unwrap();
    let metrics = metrics_text(&f.metrics);
    let config = format!("{:?}", DebugConfig::new(Secret::new(CANARY)));
    for (what, text) in [
        ("log", logs().contents()),
        ("metrics", metrics.clone()),
        ("error body", answer.body.clone()),
        ("Debug", config),
        ("ls", format!("{ls:?}")),
    ] {
        assert!(!text.contains(CANARY), "the secret appears in the {what}");
        assert!(
            !text.contains("5b1e"),
            "part of the secret appears in the {what}"
        );
    }
    assert!(
        metrics.contains("debug_logins_total{outcome=\"wrong_secret\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("debug_logins_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    let refused = logs().lines("login refused: wrong secret");
    assert!(
        refused.iter().filter(|l| l.contains("127.0.0.1")).count() >= 4,
        "each refusal is audited with the peer: {refused:?}"
    );
}

// RELIABILITY 19: 10 failures lock that IP out, even with the right secret; no other IP.
#[tokio::test]
async fn ten_failures_lock_out_that_ips_wrong_answers_and_no_other() {
    logs();
    let f = fixture(
        |c| c.allowed_ips = AllowList::new(["127.0.0.0/8".parse().unwrap()]),
        HOLD,
        4,
    )
    .await;
    let wrong = Secret::new("not-the-secret-but-long-enough");
    for _ in 0..10 {
        assert_eq!(
            refusal(login_from("127.0.0.3", &f.addr, &wrong).await),
            Refusal::WrongSecret
        );
    }
    // Locked out: a wrong answer is refused as such, and answered late.
    let started = Instant::now();
    let locked = login_from("127.0.0.3", &f.addr, &wrong).await;
    let Err(ClientError::Refused { reason, message }) = locked else {
        panic!("a wrong secret got in");
    };
    assert_eq!(reason, Refusal::RateLimited);
    assert!(
        message.contains("127.0.0.3") && message.contains("refused for"),
        "{message}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The right answer from the same address gets in: failing logins cannot lock the
    // operator out.
    let mut operator = login_from("127.0.0.3", &f.addr, &secret()).await.unwrap();
    assert!(matches!(
        operator.call(&ClientMessage::Ls).await.unwrap(),
        ServerMessage::Requests { .. }
    ));
    // No global lockout: another allowlisted IP logs in.
    let mut other = login_from("127.0.0.4", &f.addr, &secret()).await.unwrap();
    assert!(matches!(
        other.call(&ClientMessage::Ls).await.unwrap(),
        ServerMessage::Requests { .. }
    ));
}

// RELIABILITY 20: the allowlist is the socket's peer address, checked before the handshake.
#[tokio::test]
async fn the_allowlist_is_the_peer_address_before_any_byte_and_never_x_forwarded_for() {
    logs();
    let f = fixture(
        |c| c.allowed_ips = AllowList::new(["10.0.0.0/8".parse().unwrap()]),
        HOLD,
        4,
    )
    .await;
    // A forged X-Forwarded-For from an allowed network changes nothing: not a byte comes back.
    let answer = raw(
        &f.addr,
        &handshake(
            &f.addr,
            "x-forwarded-for: 10.1.2.3\r\nx-real-ip: 10.1.2.3\r\n",
        ),
    )
    .await;
    match answer {
        Ok(r) => assert!(r.head.is_empty() && r.status == 0, "answered: {r:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let refused = Client::connect(&f.addr, &secret()).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::ClosedBeforeHandshake { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("allowed_ips"), "{refused}");
    assert!(!logs()
        .lines("connection refused: not in allowed_ips")
        .is_empty());
    // The list is live: allowing loopback lets the same client in.
    f.console
        .set_allowed_ips(AllowList::new(["127.0.0.1".parse().unwrap()]));
    login(&f.addr).await;
}

#[tokio::test]
async fn an_ipv4_mapped_peer_is_its_ipv4_address() {
    logs();
    // A dual-stack socket reports an IPv4 client as ::ffff:127.0.0.1.
    let listener = match tokio::net::TcpListener::bind("[::]:0").await {
        Ok(listener) => listener,
        Err(e) => panic!("this test needs IPv6 sockets: {e}"),
    };
    let port = listener.local_addr().unwrap().port();
    let mut config = DebugConfig::new(secret());
    config.allowed_ips = AllowList::new(["127.0.0.1".parse().unwrap()]);
    let running = RemoteDebugServer::new(EnvelopeRegistry::new(), config)
        .unwrap()
        .serve(listener);
    Client::connect(&format!("127.0.0.1:{port}"), &secret())
        .await
        .expect("::ffff:127.0.0.1 is 127.0.0.1");
    running.set_allowed_ips(AllowList::new(["::1".parse().unwrap()]));
    let refused = Client::connect(&format!("127.0.0.1:{port}"), &secret()).await;
    assert!(matches!(
        refused,
        Err(ClientError::ClosedBeforeHandshake { .. })
    ));
    running.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_or_an_unexpected_host_gets_403() {
    logs();
    let f = fixture(|_| {}, HOLD, 4).await;
    let port = f.console.local_addr().port();
    let cases = [
        (format!("evil.example:{port}"), String::new(), 403),
        (format!("127.0.0.1.evil.example:{port}"), String::new(), 403),
        (
            f.addr.clone(),
            "origin: http://evil.example\r\n".to_owned(),
            403,
        ),
        (f.addr.clone(), "origin: null\r\n".to_owned(), 403),
        (
            f.addr.clone(),
            format!("origin: http://{}\r\n", f.addr),
            101,
        ),
        (
            format!("localhost:{port}"),
            format!("origin: http://localhost:{port}\r\n"),
            101,
        ),
        (f.addr.clone(), String::new(), 101),
    ];
    for (host, headers, status) in cases {
        let answer = raw(&f.addr, &handshake(&host, &headers)).await.unwrap();
        assert_eq!(
            answer.status, status,
            "Host {host}, {headers:?}: {answer:?}"
        );
    }
    // The page itself is behind the same check.
    let page = raw(
        &f.addr,
        &format!("GET / HTTP/1.1\r\nhost: evil.example:{port}\r\nconnection: close\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(page.status, 403);
    assert!(!logs().lines("refused: unexpected Host").is_empty());
    assert!(!logs().lines("refused: foreign Origin").is_empty());
}

// RELIABILITY 21: bounded messages, sessions and idle time.
#[tokio::test]
async fn a_message_over_1_mib_closes_the_session_and_the_server_goes_on() {
    logs();
    let f = fixture(|_| {}, HOLD, 4).await;
    let mut session = login(&f.addr).await;
    let huge = "x".repeat(genro_debug::DEFAULT_MAX_MESSAGE_SIZE + 1);
    let closed = session
        .call(&ClientMessage::Show {
            id: huge,
            trace: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(closed, ClientError::Closed | ClientError::Refused { .. }),
        "{closed}"
    );
    // Just under the limit is a command like any other.
    let mut session = login(&f.addr).await;
    let reply = session
        .call(&ClientMessage::Show {
            id: "y".repeat(1 << 19),
            trace: false,
        })
        .await
        .unwrap();
    assert!(matches!(reply, ServerMessage::Error { .. }), "{reply:?}");
}

#[tokio::test]
async fn sessions_beyond_the_limit_are_refused_with_a_reason() {
    logs();
    let f = fixture(|c| c.max_sessions = 2, HOLD, 4).await;
    let first = login(&f.addr).await;
    let _second = login(&f.addr).await;
    let third = Client::connect(&f.addr, &secret()).await;
    let Err(ClientError::Refused { reason, message }) = third else {
        panic!("a third session was let in");
    };
    assert_eq!(reason, Refusal::TooManySessions);
    assert!(message.contains("most sessions open (2)"), "{message}");
    first.close().await;
    wait_for("a session", async || {
        Client::connect(&f.addr, &secret()).await.ok()
    })
    .await;
}

/// A WebSocket that completed its handshake and got its challenge, and will never answer it.
async fn silent_websocket(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(handshake(addr, "").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The 101 head, then the challenge's frame.
    while !(seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.ends_with(b"}")) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("challenge"));
    stream
}

/// Whether the server closes `stream` within `limit` (reading and dropping what it sends).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

// RELIABILITY 39: unauthenticated connections hold no session.
#[tokio::test]
async fn websockets_that_never_answer_their_challenge_hold_no_session() {
    logs();
    let f = fixture(|c| c.max_sessions = 2, HOLD, 4).await;
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(silent_websocket(&f.addr).await);
    }
    let mut first = login(&f.addr).await;
    let _second = login(&f.addr).await;
    assert!(matches!(
        first.call(&ClientMessage::Ls).await.unwrap(),
        ServerMessage::Requests { .. }
    ));
    assert!(metrics_text(&f.metrics).contains("debug_sessions 2"));
    // max_sessions still bounds the sessions logged in.
    let third = Client::connect(&f.addr, &secret()).await;
    assert_eq!(refusal(third), Refusal::TooManySessions);
}

// RELIABILITY 39: connections that stall before login cannot keep a new one out.
#[tokio::test]
async fn connections_trickling_a_head_cannot_keep_the_operator_out() {
    logs();
    let f = fixture(|_| {}, HOLD, 4).await;
    let mut trickling = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(&f.addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        trickling.push(stream);
    }
    let mut operator = login(&f.addr).await;
    assert!(matches!(
        operator.call(&ClientMessage::Ls).await.unwrap(),
        ServerMessage::Requests { .. }
    ));
    // The oldest were closed to make room; the login (done now) took none of the budget.
    assert!(closed_within(&mut trickling[0], Duration::from_secs(5)).await);
}

// RELIABILITY 39: a connection that does not log in has login_timeout from its accept,
// whatever it does meanwhile.
#[tokio::test]
async fn a_connection_that_does_not_log_in_is_closed_at_login_timeout() {
    logs();
    let f = fixture(|c| c.login_timeout = Duration::from_millis(800), HOLD, 4).await;
    let started = Instant::now();
    // Loading the page over and over on one kept-alive connection.
    let mut browsing = TcpStream::connect(&f.addr).await.unwrap();
    let request = format!("GET /console.css HTTP/1.1\r\nhost: {}\r\n\r\n", f.addr);
    let mut buf = [0u8; 8192];
    let closed = wait_for("the browsing connection's end", async || {
        if browsing.write_all(request.as_bytes()).await.is_err() {
            return Some(true);
        }
        let answered = tokio::time::timeout(Duration::from_secs(1), browsing.read(&mut buf)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "still open");
        match answered {
            Ok(Ok(0) | Err(_)) => Some(true),
            Ok(Ok(_)) => None,
            Err(_) => Some(false),
        }
    })
    .await;
    assert!(closed, "the connection stopped answering but stayed open");
    assert!(started.elapsed() >= Duration::from_millis(700));
    // A WebSocket that never answers: closed at the same deadline.
    let started = Instant::now();
    let mut silent = silent_websocket(&f.addr).await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_millis(700));
}

#[tokio::test]
async fn a_session_limit_past_any_count_lets_sessions_in() {
    logs();
    // The largest count, and the largest a tokio semaphore holds (`MAX_PERMITS`).
    for max in [usize::MAX, usize::MAX >> 3] {
        let f = fixture(|c| c.max_sessions = max, HOLD, 4).await;
        let mut session = login(&f.addr).await;
        session.call(&ClientMessage::Ls).await.unwrap();
        let _second = login(&f.addr).await;
    }
}

#[tokio::test]
async fn an_idle_session_times_out() {
    logs();
    let f = fixture(|c| c.session_timeout = Duration::from_millis(300), HOLD, 4).await;
    let mut session = login(&f.addr).await;
    session.call(&ClientMessage::Ls).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let closed = session.call(&ClientMessage::Ls).await.unwrap_err();
    match closed {
        ClientError::Refused { reason, .. } => assert_eq!(reason, Refusal::IdleTimeout),
        ClientError::Closed => {}
        other => panic!("{other}"),
    }
    assert!(!logs().lines("session closed: idle").is_empty());
}

#[tokio::test]
async fn held_requests_are_released_after_hold_timeout_and_max_held_is_a_bound() {
    logs();
    let f = fixture(|_| {}, Duration::from_millis(600), 1).await;
    // A client error is answered at once, never held (a hold would last 600 ms).
    let asked = Instant::now();
    let not_found = fetch(f.app, "/notfound", "").await;
    assert_eq!(not_found.status, 404);
    assert!(asked.elapsed() < Duration::from_millis(500), "held");
    assert!(f.holds.is_empty() && f.holds.not_held() == 0);
    let started = Instant::now();
    let first = tokio::spawn(async move { fetch(f.app, "/panic", "").await });
    wait_for("a held request", async || {
        (f.holds.len() == 1).then_some(())
    })
    .await;
    // The most are held: the next error is answered at once.
    let second = fetch(f.app, "/panic", "").await;
    assert_eq!(second.status, 500);
    assert!(started.elapsed() < Duration::from_millis(550), "not held");
    assert_eq!(f.holds.not_held(), 1);
    // No debugger came: the first is answered after hold_timeout with its error id.
    let first = first.await.unwrap();
    assert_eq!(first.status, 500);
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    assert!(first.header("x-error-id").is_some());
    assert!(f.holds.is_empty());
    assert!(metrics_text(&f.metrics).contains("debug_not_held_total 1"));
}

#[tokio::test]
async fn a_panicking_request_is_held_attached_and_continued_with_its_own_error_id() {
    logs();
    common::capture_backtraces();
    let f = fixture(|_| {}, HOLD, 4).await;
    let app = f.app;
    let client = tokio::spawn(async move {
        fetch(
            app,
            "/panic",
            "authorization: Bearer token-abc\r\nx-trace: visible\r\n",
        )
        .await
    });
    let mut console = login(&f.addr).await;
    let id = wait_for("a request's id", async || {
        match console.call(&ClientMessage::Held).await.unwrap() {
            ServerMessage::HeldList { held } => held.first().map(|h| h.request.id.clone()),
            other => panic!("{other:?}"),
        }
    })
    .await;
    // Held, and shown as such among the requests in flight.
    let ServerMessage::Requests { requests } = console.call(&ClientMessage::Ls).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].id.as_str(), requests[0].phase.as_str()),
        (id.as_str(), "held")
    );
    let ServerMessage::Attached { held } = console
        .call(&ClientMessage::Attach { id: id.clone() })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((held.status, held.kind.as_str()), (500, "panic"));
    assert_eq!(held.chain, vec!["boom while pricing order 42".to_owned()]);
    let backtrace = held.backtrace.expect("a backtrace");
    assert!(backtrace.contains("console"), "{backtrace}");
    assert!(held
        .request
        .annotations
        .contains(&("order".into(), "42".into())));
    let headers = held.request.headers.expect("headers kept");
    assert!(headers.contains(&("authorization".into(), genro_debug::MASKED.into())));
    assert!(headers.contains(&("x-trace".into(), "visible".into())));
    assert!(!format!("{headers:?}").contains("token-abc"));
    assert!(
        !client.is_finished(),
        "the client waits while the request is held"
    );
    let command = ClientMessage::Continue { id: id.clone() };
    let done = format!("released {id} with its own response");
    let answer = command_answers(&mut console, command, &done, client, 500, &id).await;
    assert!(answer.body.contains(&id), "{}", answer.body);
    assert!(logs()
        .lines("command: release")
        .iter()
        .any(|l| l.contains(&id)));
}

/// A request to `/panic` on its way, held; a console logged in; the held request's id.
async fn held_panic(f: &common::Fixture) -> (tokio::task::JoinHandle<common::Raw>, Client, String) {
    let app = f.app;
    let client = tokio::spawn(async move { fetch(app, "/panic", "").await });
    let mut console = login(&f.addr).await;
    let id = wait_for("a request's id", async || {
        match console.call(&ClientMessage::Held).await.unwrap() {
            ServerMessage::HeldList { held } => held.first().map(|h| h.request.id.clone()),
            _ => None,
        }
    })
    .await;
    (client, console, id)
}

#[tokio::test]
async fn a_held_request_can_be_released_with_a_status_of_the_debuggers_choosing() {
    logs();
    let f = fixture(|_| {}, HOLD, 4).await;
    let (client, mut console, id) = held_panic(&f).await;
    let bad = console
        .call(&ClientMessage::Release {
            id: id.clone(),
            status: 99,
        })
        .await
        .unwrap();
    assert!(matches!(bad, ServerMessage::Error { .. }), "{bad:?}");
    console
        .call(&ClientMessage::Release {
            id: id.clone(),
            status: 418,
        })
        .await
        .unwrap();
    let answer = client.await.unwrap();
    assert_eq!(answer.status, 418);
    assert_eq!(answer.header("x-error-id").as_deref(), Some(id.as_str()));
}

/// `cancel` on a held request does what it announces: the request is released at once with 503,
/// long before `hold_timeout`.
#[tokio::test]
async fn cancelling_a_held_request_releases_it_with_the_503_it_announces() {
    logs();
    let f = fixture(|_| {}, HOLD, 4).await;
    let (client, mut console, id) = held_panic(&f).await;
    let answer = tokio::time::timeout(
        HOLD / 4,
        command_answers(
            &mut console,
            ClientMessage::Cancel { id: id.clone() },
            &format!("cancelled {id}: it was held on error, and is released with 503"),
            client,
            503,
            &id,
        ),
    )
    .await
    .expect("released at once, not at hold_timeout");
    assert!(answer.body.contains(&id), "{}", answer.body);
    assert!(f.holds.is_empty());
    let reply = console.call(&ClientMessage::Held).await.unwrap();
    assert_eq!(reply, ServerMessage::HeldList { held: Vec::new() });
}

#[tokio::test]
async fn a_cancelled_request_ends_with_503_its_handler_dropped_and_leaves_the_registry() {
    logs();
    let f = fixture(|_| {}, HOLD, 4).await;
    let app = f.app;
    let client = tokio::spawn(async move {
        fetch(
            app,
            "/slow",
            "cookie: session=s3cr3t\r\n\
                 traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
        )
        .await
    });
    let mut console = login(&f.addr).await;
    let id = wait_for("a request's id", async || {
        match console.call(&ClientMessage::Ls).await.unwrap() {
            ServerMessage::Requests { requests } => requests
                .iter()
                .find(|r| r.target == "/slow" && r.annotations == 1)
                .map(|r| r.id.clone()),
            _ => None,
        }
    })
    .await;
    let ServerMessage::Request { request } = console
        .call(&ClientMessage::Show {
            id: id.clone(),
            trace: false,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(request.waiting_on, None, "only --trace takes a dump");
    assert_eq!(
        request.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        request.annotations,
        vec![("step".into(), "waiting on the bank".into())]
    );
    assert_eq!(request.route.as_deref(), Some("/slow"));
    let headers = request.headers.unwrap();
    assert!(
        headers.contains(&("cookie".into(), genro_debug::MASKED.into())),
        "{headers:?}"
    );
    // The full internal id finds it too.
    let by_full = console
        .call(&ClientMessage::Show {
            id: request.internal_id.clone(),
            trace: false,
        })
        .await
        .unwrap();
    assert!(matches!(by_full, ServerMessage::Request { .. }));
    // What it waits on: in this build (no task dumps; the root tests/taskdump.rs checks a
    // trace), the sentence that says how to get one.
    let ServerMessage::Request { request: traced } = console
        .call(&ClientMessage::Show {
            id: id.clone(),
            trace: true,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let waiting = traced.waiting_on.expect("--trace answers");
    if !genro_envelope::taskdump::AVAILABLE {
        assert_eq!(waiting.trace, None);
        let why = waiting.unavailable.unwrap();
        assert!(why.contains("--cfg tokio_unstable"), "{why}");
    }
    assert!(!f.dropped());
    let command = ClientMessage::Cancel { id: id.clone() };
    let done = format!("cancelled {id}: it ends with 503");
    let answer = command_answers(&mut console, command, &done, client, 503, &id).await;
    assert!(answer
        .header("content-type")
        .unwrap()
        .contains("problem+json"));
    assert!(f.dropped(), "the handler's drop guard ran");
    wait_for("no request in flight", async || {
        f.registry.is_empty().then_some(())
    })
    .await;
    let unknown = console
        .call(&ClientMessage::Cancel { id: id.clone() })
        .await
        .unwrap();
    assert!(matches!(unknown, ServerMessage::Error { .. }));
    let shown = logs().lines("command: show");
    assert!(shown.iter().any(|l| l.contains(&id)), "{shown:?}");
    let audit = logs().lines("command: cancel");
    assert!(
        audit
            .iter()
            .any(|l| l.contains(&id) && l.contains("127.0.0.1")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn log_level_calls_the_servers_filter_and_is_audited() {
    logs();
    let registry = EnvelopeRegistry::new();
    let set: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let mut config = DebugConfig::new(secret());
    config.port = 0;
    let running = RemoteDebugServer::new(registry, config)
        .unwrap()
        .log_filter({
            let set = set.clone();
            move |filter| {
                if filter == "nonsense" {
                    return Err("\"nonsense\" is not a log level".into());
                }
                set.lock().unwrap().push(filter.to_owned());
                Ok(())
            }
        })
        .bind()
        .await
        .unwrap();
    let mut console = login(&running.local_addr().to_string()).await;
    let ok = console
        .call(&ClientMessage::LogLevel {
            filter: "debug,hyper=info".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        ok,
        ServerMessage::Done {
            message: "log filter is now debug,hyper=info".into()
        }
    );
    let bad = console
        .call(&ClientMessage::LogLevel {
            filter: "nonsense".into(),
        })
        .await
        .unwrap();
    assert!(matches!(bad, ServerMessage::Error { .. }));
    assert_eq!(*set.lock().unwrap(), vec!["debug,hyper=info".to_owned()]);
    assert!(logs()
        .lines("command: log-level")
        .iter()
        .any(|l| l.contains("hyper=info")));
    // Without holds, the hold commands say why they cannot work.
    let held = console.call(&ClientMessage::Held).await.unwrap();
    assert!(matches!(held, ServerMessage::Error { message } if message.contains("remote_pdb")));
    running.stop().await;
}

#[tokio::test]
async fn the_server_stopping_tells_its_sessions() {
    logs();
    let mut config = DebugConfig::new(secret());
    config.port = 0;
    let running = RemoteDebugServer::new(EnvelopeRegistry::new(), config)
        .unwrap()
        .bind()
        .await
        .unwrap();
    let addr = running.local_addr();
    let mut console = login(&addr.to_string()).await;
    running.stop().await;
    let closed = console.call(&ClientMessage::Ls).await.unwrap_err();
    assert!(
        matches!(
            closed,
            ClientError::Refused {
                reason: Refusal::ShuttingDown,
                ..
            } | ClientError::Closed
        ),
        "{closed}"
    );
    let gone = Client::connect(&addr.to_string(), &secret())
        .await
        .unwrap_err();
    assert!(matches!(gone, ClientError::Unreachable { .. }), "{gone}");
    let _ = IpAddr::from([127, 0, 0, 1]);
}
